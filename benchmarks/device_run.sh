#!/bin/bash
# One call on a GPU machine with >= 10 CPU cores: the GPU benchmarks, and the 2-thread CPU
# benchmarks pinned to separate core pairs (each comparison stays interleaved within its pair).
# Usage: OASIS_OFFICIAL_REPO=... bash benchmarks/device_run.sh OUTDIR [cpu,gpu_train,gpu_infer]
set -u
OUT=${1:-/tmp/bench_out}; WHAT=${2:-cpu,gpu_train,gpu_infer}; mkdir -p "$OUT"
LOG=$(mktemp -d)
export PYTHONPATH=$PWD/src:$PWD PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
pids=()
if [[ ",$WHAT," == *,cpu,* ]]; then
  core=0
  for job in train:64x2 train:64x4 train:128x2 train:128x4 infer:256x1 infer:256x4; do
    kind=${job%%:*}; cfg=${job#*:}
    taskset -c $core,$((core + 1)) timeout ${CPU_TIMEOUT:-400} $PY benchmarks/bench_$kind.py --configs $cfg \
      --repeats ${CPU_REPEATS:-3} --name ${kind}_cpu_$cfg > "$LOG/cpu_${kind}_$cfg.log" 2>&1 & pids+=($!)
    core=$((core + 2))
  done
fi
if [[ ",$WHAT," == *,gpu_infer,* ]]; then
  taskset -c 12-15 timeout ${GPU_TIMEOUT:-200} $PY benchmarks/bench_infer.py --device cuda --variants ${GPU_INFER_VARIANTS:-plain,fast,fast_cl,fast_bf16_cl,fast_fp16_cl,fast_bf16_cl_compile} --configs ${GPU_INFER:-256x1,256x16} --repeats ${GPU_REPEATS:-10} --threads 4 --name infer_cuda > "$LOG/gpu_infer.log" 2>&1
fi
if [[ ",$WHAT," == *,gpu_train,* ]]; then
  taskset -c 12-15 timeout ${GPU_TRAIN_TIMEOUT:-150} $PY benchmarks/bench_train.py --device cuda --variants ${GPU_TRAIN_VARIANTS:-plain,fast,fast_cl,fast_bf16_cl,fast_fp16_cl} --configs ${GPU_TRAIN:-256x8} --repeats ${GPU_REPEATS:-10} --threads 4 --name train_cuda > "$LOG/gpu_train.log" 2>&1
fi
for p in "${pids[@]}"; do wait $p; done
tail -n 40 "$LOG"/*.log > "$OUT/all.log"; tar -czf "$OUT/results.tgz" benchmarks/results
