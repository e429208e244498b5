#!/usr/bin/env bash
# usage: run.sh NAME [--set ...]: toy preset, 1200 iterations, checkpoints every 300
name=$1; shift
cd /work/main && exec /work/heavy .venv/bin/oasis train --preset toy --data-root /work/runs/toydata --out /work/runs/art/$name \
  --resume --num-workers 0 --ckpt-every 300 --no-progress "$@"
