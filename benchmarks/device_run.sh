#!/bin/bash
# One call on a GPU machine with >= 10 CPU cores: the GPU benchmarks, and the 2-thread CPU
# benchmarks pinned to separate core pairs (each comparison stays interleaved within its pair).
# Usage: OASIS_OFFICIAL_REPO=... bash benchmarks/device_run.sh OUTDIR [gpu|cpu|all]
set -u
OUT=${1:-/tmp/bench_out}; WHAT=${2:-all}; mkdir -p "$OUT"
export PYTHONPATH=$PWD/src:$PWD PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
pids=()
if [ "$WHAT" != gpu ]; then
  taskset -c 0,1 $PY benchmarks/bench_train.py --configs 64x2,64x4 --repeats ${CPU_REPEATS:-3} --name train_cpu_64 > "$OUT/cpu_train_64.log" 2>&1 & pids+=($!)
  taskset -c 2,3 $PY benchmarks/bench_train.py --configs 128x2 --repeats ${CPU_REPEATS:-3} --name train_cpu_128b2 > "$OUT/cpu_train_128b2.log" 2>&1 & pids+=($!)
  taskset -c 4,5 $PY benchmarks/bench_train.py --configs 128x4 --repeats ${CPU_REPEATS:-3} --name train_cpu_128b4 > "$OUT/cpu_train_128b4.log" 2>&1 & pids+=($!)
  taskset -c 6,7 $PY benchmarks/bench_infer.py --configs 256x1,256x4 --repeats ${CPU_REPEATS:-3} --name infer_cpu > "$OUT/cpu_infer.log" 2>&1 & pids+=($!)
fi
if [ "$WHAT" != cpu ]; then
  taskset -c 8-15 $PY benchmarks/bench_train.py --device cuda --configs ${GPU_TRAIN:-256x8} --repeats ${GPU_REPEATS:-10} --threads 4 --name train_cuda > "$OUT/gpu_train.log" 2>&1
  taskset -c 8-15 $PY benchmarks/bench_infer.py --device cuda --configs ${GPU_INFER:-256x1,256x16} --repeats ${GPU_REPEATS:-10} --threads 4 --name infer_cuda > "$OUT/gpu_infer.log" 2>&1
fi
for p in "${pids[@]}"; do wait $p; done
tar -czf "$OUT/results.tgz" benchmarks/results
