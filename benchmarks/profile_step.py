"""Where one benchmark workload spends its time: torch.profiler over a few iterations of the
same workload `bench_train.py` / `bench_infer.py` time, top operators by self time, and on CUDA
how busy the GPU was (kernel time / wall time: low means the step is launch-bound on the host).

    python benchmarks/profile_step.py --kind train --res 128 --batch 2 --variant fast
    python benchmarks/profile_step.py --kind train --res 256 --batch 8 --variant fast_bf16_cl --device cuda
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from benchmarks.common import VARIANTS, Spec, Workload  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=["train", "infer"], default="train")
    p.add_argument("--res", type=int, default=128)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--variant", default="fast", choices=[v for v in VARIANTS if v != "official"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    wl = Workload(Spec(a.kind, a.res, a.batch, a.variant, device=a.device, threads=a.threads))
    for _ in range(2):
        wl.timed()
    cuda = wl.device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        t = time.perf_counter()
        for _ in range(a.iters):
            wl.run_once()
        wl.sync()
        wall = (time.perf_counter() - t) / a.iters
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=a.top))
    print(f"{a.kind} {a.res}x{a.res} b{a.batch} {a.variant} on {a.device}: {wall * 1e3:.1f} ms / iteration")
    if cuda:
        busy = sum(e.self_device_time_total for e in prof.key_averages()) / 1e6 / a.iters
        print(f"GPU kernel time {busy * 1e3:.1f} ms / iteration: busy {busy / wall:.0%} of wall "
              f"(low = launch-bound on the host)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
