#!/bin/bash
# Everything a CUDA machine should check, in stages, logs and results into OUTDIR:
#   env      GPU, driver, torch
#   tests    the test suite with a GPU present (CUDA-only tests included)
#   cli      `oasis train` on the toy set: bf16 + channels_last + compile, then torchrun (NCCL),
#            resume, and synthesis from the checkpoint on the GPU
#   infer    bench_infer.py on CUDA (GPU_INFER configs, GPU_INFER_VARIANTS)
#   train    bench_train.py on CUDA (GPU_TRAIN configs, GPU_TRAIN_VARIANTS)
#   profile  profile_step.py: GPU busy fraction of a training iteration (launch-bound or not)
# Usage: bash benchmarks/device_run.sh OUTDIR [env,tests,cli,infer,train,profile]
set -u
OUT=${1:-/tmp/gpu_out}; WHAT=${2:-env,tests,cli,infer,train,profile}; mkdir -p "$OUT"
export PYTHONPATH=$PWD/src:$PWD PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
has() { [[ ",$WHAT," == *,$1,* ]]; }
run() { local name=$1; shift; echo "== $name: $*"; local t=$SECONDS
        "$@" > "$OUT/$name.log" 2>&1; local rc=$?; tail -n ${TAIL:-25} "$OUT/$name.log"
        echo "== $name: rc=$rc in $((SECONDS - t)) s"; }
oasis() { $PY -m oasisgan.cli "$@"; }
if has env; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
fi
if has tests; then
  run tests timeout ${TEST_TIMEOUT:-300} $PY -m pytest -q -x -p no:cacheprovider -n ${TEST_WORKERS:-8}
fi
if has cli; then
  R=/tmp/oasis_cli; rm -rf $R
  oasis data toy --out $R/toy > /dev/null
  common=(--preset toy --data-root $R/toy --device cuda --num-workers 2 --sample-every 20 --ckpt-every 20)
  run cli_compile timeout 300 $PY -m oasisgan.cli train "${common[@]}" --out $R/amp --iters 40 \
      --amp bf16 --channels-last --compile
  run cli_torchrun timeout 120 torchrun --standalone --nproc_per_node=1 -m oasisgan.cli train \
      "${common[@]}" --out $R/ddp --iters 20
  run cli_resume timeout 120 $PY -m oasisgan.cli train "${common[@]}" --out $R/ddp --iters 40 --resume
  run cli_synth timeout 120 $PY -m oasisgan.cli synthesize --checkpoint $R/ddp/checkpoints/latest.ckpt \
      --labels $R/toy/val/labels --out $R/synth --samples 2 --device cuda
fi
if has infer; then
  run bench_infer timeout ${GPU_INFER_TIMEOUT:-300} $PY benchmarks/bench_infer.py --device cuda --threads 4 \
      --variants ${GPU_INFER_VARIANTS:-plain,fast_cl,plain_bf16,fast_bf16_cl,fast_fp16_cl,plain_compile,fast_bf16_cl_compile} \
      --configs ${GPU_INFER:-256x1,256x16} --repeats ${GPU_REPEATS:-10} --name infer_cuda
fi
if has train; then
  run bench_train timeout ${GPU_TRAIN_TIMEOUT:-300} $PY benchmarks/bench_train.py --device cuda --threads 4 \
      --variants ${GPU_TRAIN_VARIANTS:-plain,fast,fast_cl,plain_bf16,fast_bf16_cl,fast_fp16_cl} \
      --configs ${GPU_TRAIN:-256x8} --repeats ${GPU_REPEATS:-10} --name train_cuda
fi
if has profile; then
  TAIL=4 run profile_fp32 timeout 120 $PY benchmarks/profile_step.py --device cuda --threads 4 \
      --res 256 --batch 8 --variant fast
  TAIL=4 run profile_bf16 timeout 120 $PY benchmarks/profile_step.py --device cuda --threads 4 \
      --res 256 --batch 8 --variant fast_bf16_cl
fi
cp benchmarks/results/*cuda* "$OUT"/ 2>/dev/null || true
