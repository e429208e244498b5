"""Shared benchmark machinery: realistic label maps, the timed workloads, and persistent worker
processes so that code paths are timed interleaved while each has its own honest peak memory.

How a comparison runs: for one config, the parent starts one worker process per variant
(e.g. `plain` = every oasisgan.ops op on its reference, the official computation; `fast` = our
default; `base_fast` = `fast` run by the checkout in $OASIS_BENCH_BASE). Each worker builds
its networks, warms up, counts FLOPs (torch.utils.flop_counter) and waits. The parent then asks
the workers in turn for one timed repeat each (plain, fast, plain, fast, ...), so both see the same machine load, and finally collects each worker's peak memory (peak RSS from
the kernel; on CUDA also torch.cuda.max_memory_allocated).

The training iteration timed is the real one, `oasisgan.training.step.TrainStep.step`: G step
(fake = G(label), class-balanced N+1 loss on D(fake), backward, Adam), D step (fake regenerated
under no_grad by the updated G, D(fake), D(real), LabelMix D(mixed), backward, Adam), EMA update.
"""
from __future__ import annotations

import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# The official implementation on the 2-core development machine (issue 7): seconds per
# iteration (training) or per image (inference), fp32, 2 threads; peak RSS in GiB.
OFFICIAL = {
    ("train", 64, 2): (2.07, 3.3), ("train", 64, 4): (3.04, 3.5),
    ("train", 128, 2): (4.26, 3.9), ("train", 128, 4): (9.22, 4.7),
    ("infer", 256, 1): (1.93, 1.55), ("infer", 256, 4): (2.14, 2.8),
}


# ------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------
def realistic_labels(batch: int, h: int, w: int, num_classes: int = 151, regions: int = 12,
                     seed: int = 0) -> torch.Tensor:
    """Deterministic ADE20K-like label maps (B, H, W) int64: `regions` classes per image, smooth
    blobby regions (argmax of upsampled low-resolution noise, one field per class). At 256x256
    about 29% of the pixels lie within 2 px of a label boundary (13-31% in real ADE20K maps)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        classes = torch.randperm(num_classes - 1, generator=g)[:regions] + 1
        field_ = torch.randn(1, regions, 6, 6, generator=g)
        field_ = F.interpolate(field_, size=(h, w), mode="bicubic", align_corners=False)
        field_ = field_ + 0.15 * F.interpolate(torch.randn(1, regions, 24, 24, generator=g),
                                               size=(h, w), mode="bilinear", align_corners=False)
        out.append(classes[field_[0].argmax(0)])
    ids = torch.stack(out)
    ids[:, : max(1, h // 16), :] = 0  # a strip of don't-care pixels, as in real data
    return ids


def boundary_fraction(ids: torch.Tensor, radius: int = 2) -> float:
    p = F.pad(ids[:, None].float(), (radius,) * 4, value=-1.0)
    k = 2 * radius + 1
    hi = F.max_pool2d(p, k, 1)
    lo = -F.max_pool2d(-p, k, 1)
    return float((hi != lo).float().mean())


def make_config(res: int, batch: int, **overrides):
    from oasisgan.config import preset

    return preset("ade20k", crop_size=res, load_size=max(res, 286), batch_size=batch, **overrides)


# ------------------------------------------------------------------------------------------
# Workloads (built inside a worker)
# ------------------------------------------------------------------------------------------
@dataclass
class Spec:
    kind: str                  # "train" | "infer"
    res: int
    batch: int
    variant: str               # plain | fast | fast_cl | ... (see VARIANTS)
    device: str = "cpu"
    threads: int = 2
    seed: int = 0
    save_output: Optional[str] = None   # inference: save one output image batch here

    @classmethod
    def from_json(cls, text: str) -> "Spec":
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


# variant -> (fast_spade, amp, channels_last, compile)
VARIANTS = {
    "plain": (False, "none", False, False),          # the official computation
    "fast": (True, "none", False, False),             # default: exact fast path
    "fast_cl": (True, "none", True, False),           # + channels_last networks/inputs
    "plain_bf16": (False, "bf16", False, False),
    "fast_bf16": (True, "bf16", False, False),
    "fast_bf16_cl": (True, "bf16", True, False),
    "fast_fp16": (True, "fp16", False, False),        # CUDA only (GradScaler in training)
    "fast_fp16_cl": (True, "fp16", True, False),
    "fast_compile": (True, "none", False, True),
    "fast_bf16_cl_compile": (True, "bf16", True, True),
    "plain_compile": (False, "none", False, True),
    "official": None,  # the official code itself (needs OASIS_OFFICIAL_REPO), CPU fp32
    # training only: the D step's three D calls always batched (batch_d_calls: on; default auto)
    "fast_batchd": (True, "none", False, False),
    "fast_bf16_batchd": (True, "bf16", False, False),
    "fast_bf16_cl_batchd": (True, "bf16", True, False),
    # the fast path with direct convolutions only (ops.tuning.WINOGRAD_TILE = 0)
    "fast_nowino": (True, "none", False, False),
}


def official_repo() -> Optional[Path]:
    """A checkout of boschresearch/OASIS (env OASIS_OFFICIAL_REPO), for the `official` variant."""
    path = os.environ.get("OASIS_OFFICIAL_REPO")
    return Path(path) if path and (Path(path) / "models" / "models.py").exists() else None


class OfficialWorkload:
    """The official code itself (its models/ folder, imported from OASIS_OFFICIAL_REPO): one
    iteration exactly as its train.py (G step, D step, update_EMA without the BN re-collection
    that runs only before samples/evaluations), or its EMA generator's `generate`."""

    def __init__(self, spec: Spec, cfg, ids: torch.Tensor):
        import argparse
        import types

        repo = official_repo()
        if repo is None:
            raise RuntimeError("set OASIS_OFFICIAL_REPO to a checkout of boschresearch/OASIS")
        if spec.device != "cpu":
            raise RuntimeError("the official variant is timed on CPU only here")
        sys.path.insert(0, str(repo))
        sys.modules.setdefault("torchvision", types.ModuleType("torchvision"))  # VGG loss only
        import models.losses as off_losses  # noqa: the official code
        import models.models as off_models

        self.spec, self.cfg = spec, cfg
        opt = argparse.Namespace(
            phase="train", continue_train=False, add_vgg_loss=False, dataset_mode="ade20k",
            semantic_nc=cfg.semantic_nc, label_nc=cfg.semantic_nc - 1, crop_size=cfg.crop_size,
            aspect_ratio=cfg.aspect_ratio, channels_G=64, channels_D=64, num_res_blocks=6, z_dim=64,
            no_3dnoise=False, spade_ks=3, param_free_norm="syncbatch", no_spectral_norm=False,
            gpu_ids="-1", contain_dontcare_label=True, no_balancing_inloss=False, no_labelmix=False,
            lambda_labelmix=cfg.lambda_labelmix, EMA_decay=cfg.ema_decay, no_EMA=False,
            batch_size=spec.batch, lr_g=cfg.lr_g, lr_d=cfg.lr_d, beta1=cfg.beta1, beta2=cfg.beta2)
        self.opt, self.off_models = opt, off_models
        self.model = off_models.OASIS_model(opt)
        self.losses = off_losses.losses_computer(opt)
        self.optG = torch.optim.Adam(self.model.netG.parameters(), lr=opt.lr_g, betas=(opt.beta1, opt.beta2))
        self.optD = torch.optim.Adam(self.model.netD.parameters(), lr=opt.lr_d, betas=(opt.beta1, opt.beta2))
        from oasisgan.labels import one_hot

        self.label = one_hot(ids, cfg.semantic_nc)
        g = torch.Generator().manual_seed(spec.seed + 1)
        self.image = torch.rand(spec.batch, 3, spec.res, spec.res, generator=g) * 2 - 1
        if spec.kind == "infer":
            with torch.no_grad():
                for _ in range(2):
                    self.model.netEMA(self.label)
            self.model.netEMA.eval()

    def run_once(self):
        m = self.model
        if self.spec.kind == "infer":
            return m(None, self.label, "generate", None)
        m.netG.zero_grad()
        loss_G, _ = m(self.image, self.label, "losses_G", self.losses)
        loss_G.mean().backward()
        self.optG.step()
        m.netD.zero_grad()
        loss_D, _ = m(self.image, self.label, "losses_D", self.losses)
        loss_D.mean().backward()
        self.optD.step()
        with torch.no_grad():  # utils.update_EMA, without its periodic BN re-collection
            state_EMA, state_G = m.netEMA.state_dict(), m.netG.state_dict()
            for key in state_EMA:
                state_EMA[key].data.copy_(state_EMA[key].data * self.opt.EMA_decay
                                          + state_G[key].data * (1 - self.opt.EMA_decay))


class Workload:
    def __init__(self, spec: Spec):
        from oasisgan.nn import Discriminator, Generator

        self.spec = spec
        torch.manual_seed(spec.seed)
        if spec.variant == "official":
            self.device = torch.device(spec.device)
            self.amp = "none"
            cfg = self.cfg = make_config(spec.res, spec.batch)
            ids = realistic_labels(spec.batch, spec.res, spec.res, cfg.semantic_nc, seed=spec.seed)
            self.boundary = boundary_fraction(ids)
            self.official = OfficialWorkload(spec, cfg, ids)
            return
        self.official = None
        fast, amp, cl, comp = VARIANTS[spec.variant]
        self.device = dev = torch.device(spec.device)
        self.amp, self.cl = amp, cl
        # plain: the official arithmetic throughout (per-tensor Adam and EMA, autograd's losses)
        cfg = make_config(spec.res, spec.batch, fast_spade=fast, amp=amp, channels_last=cl,
                          compile=comp, fused_updates=fast, fused_losses=fast,
                          batch_d_calls=("on" if spec.variant.endswith("_batchd")
                                         else "auto" if fast else "off"))
        self.cfg = cfg
        if dev.type == "cpu":  # as oasisgan's Trainer and CLI do
            from oasisgan.allocator import INFERENCE_MODE, tune_cpu_allocator

            default = INFERENCE_MODE if spec.kind == "infer" else cfg.tune_malloc
            tune_cpu_allocator(os.environ.get("OASIS_BENCH_MALLOC", default))
        ids = realistic_labels(spec.batch, spec.res, spec.res, cfg.semantic_nc, seed=spec.seed)
        self.boundary = boundary_fraction(ids)
        self.label = ids.to(dev)
        from oasisgan import ops

        g = Generator.from_config(cfg).to(dev)
        if spec.variant.endswith("_nowino"):
            ops.tuning.WINOGRAD_TILE = 0
        if not cfg.fast_spade:  # plain: every op's reference (this worker process only)
            self._ops_ref = ops.use("ref")
            self._ops_ref.__enter__()
        if spec.kind == "train":
            from oasisgan.training.amp import Precision, prepare_module
            from oasisgan.training.step import TrainStep

            d = Discriminator.from_config(cfg).to(dev)
            ema = copy.deepcopy(g).requires_grad_(False)
            prepare_module(g, cl, comp)
            prepare_module(d, cl, comp)
            prepare_module(ema, cl, False)
            from oasisgan.training.build import make_adam

            opt_g, opt_d = make_adam(g.parameters(), cfg.lr_g, cfg), make_adam(d.parameters(), cfg.lr_d, cfg)
            self.stepper = TrainStep(cfg, g, d, ema, opt_g, opt_d, Precision(amp, dev))
            gimg = torch.Generator().manual_seed(spec.seed + 1)
            self.batch = {"image": torch.rand(spec.batch, 3, spec.res, spec.res, generator=gimg) * 2 - 1,
                          "label": ids}
        else:
            # An EMA generator in eval mode: settle BN statistics as after training's re-collection.
            g.train()
            with torch.no_grad():
                for _ in range(2):
                    g(self.label)
            g.eval()
            if cl:
                g.to(memory_format=torch.channels_last)
            self.g = torch.compile(g) if comp else g
            self.zgen = torch.Generator().manual_seed(spec.seed + 2)

    def autocast(self):
        import contextlib

        if self.amp == "none":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def run_once(self):
        if self.official is not None:
            self.out = self.official.run_once()
        elif self.spec.kind == "train":
            self.stepper.step(self.batch, self.device)
        else:
            z = torch.randn(self.spec.batch, self.cfg.z_dim, generator=self.zgen).to(self.device)
            with torch.no_grad(), self.autocast():
                self.out = self.g(self.label, z)

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def timed(self) -> float:
        self.sync()
        t, c = time.perf_counter(), time.process_time()
        self.run_once()
        self.sync()
        self.last_cpu = time.process_time() - c  # CPU seconds of all threads: robust to load
        return time.perf_counter() - t

    def count_flops(self) -> float:
        from torch.utils.flop_counter import FlopCounterMode

        if self.cfg.compile:  # the counter sees the compiled graph's ops poorly: count eagerly
            return float("nan")
        with FlopCounterMode(display=False) as fc:
            self.run_once()
        return float(fc.get_total_flops())

    def reference_output(self) -> Optional[torch.Tensor]:
        """Inference output for a fixed z (saved to compare precisions)."""
        if self.official is not None:
            return None
        z = torch.randn(self.spec.batch, self.cfg.z_dim, generator=torch.Generator().manual_seed(123))
        with torch.no_grad(), self.autocast():
            return self.g(self.label, z.to(self.device)).float().cpu()


def peak_memory(device: torch.device) -> Dict[str, float]:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB
    out = {"peak_rss_gib": rss}
    if device.type == "cuda":
        out["peak_cuda_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    return out


def worker_main(spec_json: str) -> None:
    """A worker: build, warm up, count FLOPs, then answer `run` / `quit` lines on stdin."""
    spec = Spec.from_json(spec_json)
    torch.set_num_threads(spec.threads)
    out = sys.stdout
    sys.stdout = sys.stderr  # keep the protocol channel clean
    try:
        t0 = time.perf_counter()
        wl = Workload(spec)
        warm = [wl.timed() for _ in range(2 if wl.cfg.compile or spec.device == "cuda" else 1)]
        flops = wl.count_flops()
        if spec.kind == "train":
            wl.timed()  # the counted iteration ran under the counter's dispatch: one clean one more
        if spec.save_output and spec.kind == "infer" and wl.official is None:
            torch.save(wl.reference_output(), spec.save_output)
        if wl.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        ready = {"ready": True, "flops": flops, "boundary": wl.boundary, "warmup_s": warm,
                 "setup_s": time.perf_counter() - t0}
    except Exception as e:  # report, do not hang the parent
        print(json.dumps({"ready": False, "error": f"{type(e).__name__}: {e}"}), file=out, flush=True)
        return
    print(json.dumps(ready), file=out, flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "run":
            times, cpu = [], []
            for _ in range(int(cmd[1])):
                times.append(wl.timed())
                cpu.append(wl.last_cpu)
            print(json.dumps({"times": times, "cpu": cpu}), file=out, flush=True)
        elif cmd[0] == "quit":
            print(json.dumps(peak_memory(wl.device)), file=out, flush=True)
            return


def baseline_repo() -> Optional[Path]:
    """Another checkout of oasisgan (env OASIS_BENCH_BASE), for the `base_*` variants: the same
    variant run by that checkout's own code, interleaved with ours (before/after timings)."""
    path = os.environ.get("OASIS_BENCH_BASE")
    return Path(path) if path and (Path(path) / "benchmarks" / "common.py").is_file() else None


class Worker:
    def __init__(self, spec: Spec):
        self.spec = spec
        repo = REPO
        if spec.variant.startswith("base_"):  # that checkout's worker, with its own variant name
            repo = baseline_repo()
            spec = Spec(**{**spec.__dict__, "variant": spec.variant[len("base_"):]})
        env = dict(os.environ)
        env["PYTHONPATH"] = str(repo / "src") + os.pathsep + env.get("PYTHONPATH", "")
        env.setdefault("OMP_NUM_THREADS", str(spec.threads))
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.common", spec.to_json()],
                                     cwd=str(repo), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.info = self._read()

    def _read(self) -> Dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            return {"ready": False, "error": f"worker exited with {self.proc.wait()}"}
        return json.loads(line)

    @property
    def ok(self) -> bool:
        return bool(self.info.get("ready"))

    def run(self, n: int = 1) -> Dict[str, List[float]]:
        self.proc.stdin.write(f"run {n}\n")
        self.proc.stdin.flush()
        return self._read()

    def quit(self) -> Dict[str, Any]:
        if not self.ok:
            return {}
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        mem = self._read()
        self.proc.wait()
        return mem


@dataclass
class Result:
    spec: Spec
    times: List[float] = field(default_factory=list)
    cpu: List[float] = field(default_factory=list)
    info: Dict[str, Any] = field(default_factory=dict)
    memory: Dict[str, Any] = field(default_factory=dict)

    def summary(self) -> Dict[str, Any]:
        s: Dict[str, Any] = dict(self.spec.__dict__)
        s.pop("save_output", None)
        if not self.info.get("ready"):
            s["error"] = self.info.get("error", "unknown")
            return s
        t = self.times
        med = statistics.median(t)
        per = self.spec.batch if self.spec.kind == "infer" else 1
        s.update(median_s=med, min_s=min(t), max_s=max(t), repeats=len(t),
                 per_image_s=med / self.spec.batch, images_per_s=self.spec.batch / med,
                 flops=self.info.get("flops"), boundary_fraction=self.info.get("boundary"),
                 setup_s=self.info.get("setup_s"), **self.memory)
        if self.cpu:
            s["cpu_median_s"] = statistics.median(self.cpu)
        fl = self.info.get("flops")
        if fl and fl == fl:
            s["gflops"] = fl / 1e9
            s["gflop_per_s"] = fl / 1e9 / med
        del per
        return s


def compare(kind: str, res: int, batch: int, variants: List[str], repeats: int, device: str = "cpu",
            threads: int = 2, save_dir: Optional[Path] = None, log=print) -> List[Result]:
    """Start one worker per variant, then time them interleaved: `repeats` rounds."""
    results = []
    for v in variants:
        save = str(save_dir / f"{kind}_{res}_{batch}_{v}.pt") if save_dir is not None else None
        spec = Spec(kind, res, batch, v, device, threads, save_output=save)
        log(f"  starting {kind} {res}x{res} b{batch} {v} ...")
        w = Worker(spec)
        if not w.ok:
            log(f"  {v}: FAILED: {w.info.get('error')}")
        results.append((w, Result(spec, info=w.info)))
    for r in range(repeats):
        for w, res_ in results:
            if w.ok:
                got = w.run(1)
                res_.times += got["times"]
                res_.cpu += got.get("cpu", [])
        log("  round %d: %s" % (r + 1, "  ".join(f"{res_.spec.variant}={res_.times[-1]:.3f}s"
                                                  for w, res_ in results if w.ok)))
    for w, res_ in results:
        res_.memory = w.quit()
    return [r for _, r in results]


def image_difference(save_dir: Path, kind: str, res: int, batch: int, variant: str,
                     reference: str = "fast") -> Optional[Dict[str, float]]:
    a = save_dir / f"{kind}_{res}_{batch}_{variant}.pt"
    b = save_dir / f"{kind}_{res}_{batch}_{reference}.pt"
    if not (a.exists() and b.exists()):
        return None
    x, y = torch.load(a), torch.load(b)
    diff = (x - y).abs()
    mse = float(((x - y) ** 2).mean())
    psnr = float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(4.0 / mse)).item()  # range 2
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "psnr_db": psnr,
            "max_rel": float(diff.max() / y.abs().max().clamp_min(1e-30))}


def environment(device: str) -> Dict[str, Any]:
    import platform

    env = {"torch": torch.__version__, "python": platform.python_version(),
           "machine": platform.machine(), "cpu": _cpu_name(), "threads": torch.get_num_threads(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if device == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    return env


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor()


def write_results(name: str, rows: List[Dict[str, Any]], table: str, meta: Dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=float))
    (RESULTS / f"{name}.md").write_text(table + "\n")
    return path


def fmt_gib(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2f}"


if __name__ == "__main__":
    worker_main(sys.argv[1])


# ------------------------------------------------------------------------------------------
# The command line shared by bench_train.py and bench_infer.py
# ------------------------------------------------------------------------------------------
def main(kind: str, argv=None) -> int:
    import argparse
    import tempfile

    default_cfg = "64x2,64x4,128x2,128x4" if kind == "train" else "256x1,256x4"
    p = argparse.ArgumentParser(description=f"OASIS {kind} benchmark: code paths timed interleaved, "
                                            "one worker process per variant (honest peak memory)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--configs", default=default_cfg, help="RESxBATCH,... (ADE20K settings, 151 classes)")
    p.add_argument("--variants", default=None,
                   help=f"comma list from {', '.join(VARIANTS)}; default plain,fast,fast_bf16 "
                        "(cuda: + fast_cl, fast_bf16_cl, fast_fp16_cl, compile)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="CPU threads per worker")
    p.add_argument("--quick", action="store_true", help="first config only, 2 repeats")
    p.add_argument("--name", default=None, help="results file stem (benchmarks/results/<name>.{json,md})")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--official-repo", default=None,
                   help="checkout of boschresearch/OASIS: adds the `official` variant (CPU)")
    a = p.parse_args(argv)
    if a.official_repo:
        os.environ["OASIS_OFFICIAL_REPO"] = str(Path(a.official_repo).resolve())
    if a.variants:
        variants = a.variants.split(",")
    elif a.device == "cuda":
        variants = ["plain", "fast", "fast_cl", "fast_bf16_cl", "fast_fp16_cl", "fast_compile",
                    "fast_bf16_cl_compile"]
    else:
        variants = (["official"] if official_repo() else []) + ["plain", "fast", "fast_bf16"]
    unknown = [v for v in variants if v not in VARIANTS
               and not (v.startswith("base_") and v[len("base_"):] in VARIANTS and baseline_repo())]
    if unknown:
        p.error(f"unknown variant(s) {unknown}")
    configs = [tuple(int(x) for x in c.split("x")) for c in a.configs.split(",")]
    repeats = a.repeats
    if a.quick:
        configs, repeats = configs[:1], min(repeats, 2)
    rows: List[Dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="oasis_bench_"))
    for res, batch in configs:
        print(f"{kind} {res}x{res} batch {batch}: {', '.join(variants)} x {repeats} rounds", flush=True)
        results = compare(kind, res, batch, variants, repeats, a.device, a.threads,
                          save_dir=tmp if kind == "infer" else None)
        summ = [r.summary() for r in results]
        base = next((s for s in summ if s["variant"] == "plain" and "median_s" in s), None)
        offrun = next((s for s in summ if s["variant"] == "official" and "median_s" in s), None)
        off = OFFICIAL.get((kind, res, batch)) if a.device == "cpu" else None
        for s in summ:
            if "median_s" not in s:
                continue
            if base is not None:
                s["speedup_vs_plain"] = base["median_s"] / s["median_s"]
                if "cpu_median_s" in base and "cpu_median_s" in s:
                    s["cpu_time_speedup_vs_plain"] = base["cpu_median_s"] / s["cpu_median_s"]
                if base.get("flops"):
                    s["official_gflop_per_s"] = base["flops"] / 1e9 / s["median_s"]
            if offrun is not None:
                s["speedup_vs_official_run"] = offrun["median_s"] / s["median_s"]
                if "cpu_median_s" in offrun and "cpu_median_s" in s:
                    s["cpu_time_speedup_vs_official_run"] = offrun["cpu_median_s"] / s["cpu_median_s"]
            if off is not None:
                per = s["per_image_s"] if kind == "infer" else s["median_s"]
                s["speedup_vs_issue_figures"] = off[0] / per
                s["issue_official_s"], s["issue_official_rss_gib"] = off
            if kind == "infer" and s["variant"] != "fast":
                d = image_difference(tmp, kind, res, batch, s["variant"])
                if d is not None:
                    s["diff_vs_fast_fp32"] = d
        rows += summ
        table = markdown_table(kind, rows, a.device)
        print()
        print(table, flush=True)
        if not a.no_save:  # after every config: a run cut short keeps what it measured
            dev = "cuda" if a.device.startswith("cuda") else "cpu"
            name = a.name or f"{kind}_{dev}{'_quick' if a.quick else ''}"
            meta = {"kind": kind, "device": a.device, "repeats": repeats, "threads": a.threads,
                    "env": environment(a.device),
                    "official_reference": {f"{k[0]} {k[1]}x{k[1]} b{k[2]}": v for k, v in OFFICIAL.items()}}
            print(f"wrote {write_results(name, rows, table, meta)}", flush=True)
    return 0


def markdown_table(kind: str, rows: List[Dict[str, Any]], device: str) -> str:
    unit = "s/iteration" if kind == "train" else "s/image"
    cuda = device.startswith("cuda")
    head = ["config", "variant", f"median {unit}", "min-max", "images/s",
            "peak CUDA GiB" if cuda else "peak RSS GiB", "GFLOP", "GFLOP/s", "vs plain (wall / CPU-time)" if not cuda else "vs plain"]
    if not cuda:
        head.append("CPU-s (all threads)")
    if any("speedup_vs_official_run" in s for s in rows):
        head.append("vs official (same run): wall / CPU-time")
    elif not cuda:
        head.append("vs issue's official figures")
    if kind == "infer":
        head.append("max |diff| vs fp32")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in rows:
        cfgname = f"{s['res']}x{s['res']} b{s['batch']}"
        if "median_s" not in s:
            lines.append(f"| {cfgname} | {s['variant']} | failed: {s.get('error', '')[:80]} |")
            continue
        per = s["per_image_s"] if kind == "infer" else s["median_s"]
        scale = 1 / s["batch"] if kind == "infer" else 1
        mem = s.get("peak_cuda_gib") if cuda else s.get("peak_rss_gib")
        cells = [cfgname, s["variant"], f"{per:.3f}", f"{s['min_s'] * scale:.3f}-{s['max_s'] * scale:.3f}",
                 f"{s['images_per_s']:.2f}" if not cuda else f"{s['images_per_s']:.1f}",
                 fmt_gib(mem), f"{s['gflops']:.0f}" if "gflops" in s else "-",
                 f"{s['gflop_per_s']:.0f}" if "gflop_per_s" in s else "-",
                 (f"{s['speedup_vs_plain']:.2f}x" + (f" / {s['cpu_time_speedup_vs_plain']:.2f}x"
                                                      if "cpu_time_speedup_vs_plain" in s else ""))
                 if "speedup_vs_plain" in s else "-"]
        if not cuda:
            cells.append(f"{s['cpu_median_s'] * scale:.2f}" if "cpu_median_s" in s else "-")
        if any("speedup_vs_official_run" in r for r in rows):
            cells.append(f"{s['speedup_vs_official_run']:.2f}x / {s.get('cpu_time_speedup_vs_official_run', float('nan')):.2f}x"
                         if "speedup_vs_official_run" in s else "-")
        elif not cuda:
            cells.append(f"{s['speedup_vs_issue_figures']:.2f}x" if "speedup_vs_issue_figures" in s else "-")
        if kind == "infer":
            d = s.get("diff_vs_fast_fp32")
            cells.append("-" if d is None else f"{d['max_abs']:.2g} ({d['max_rel']:.1g} rel)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
