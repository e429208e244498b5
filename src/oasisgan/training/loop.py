"""The training loop: ``train(cfg, data_root, out_dir, resume=False, ...)``.

Run directory::

    config.yaml                the resolved config of the run
    checkpoints/latest.ckpt    everything needed to resume (optimisers, EMA, RNG, iteration)
    checkpoints/iter_<N>.ckpt  weights every ``freq_save_ckpt`` iterations (and at the end)
    checkpoints/best.ckpt      weights of the best evaluation so far (``freq_fid`` > 0)
    samples/iter_<N>.png       label | real | G | EMA G, every ``freq_print`` iterations
    tb/                        TensorBoard
    log.jsonl                  the same scalars as JSON lines

Every checkpoint loads with ``oasisgan.load``. Schedule (counted in completed iterations N):
the EMA generator's BatchNorm statistics are re-collected whenever N is a multiple of
``freq_print``, ``freq_fid`` (evaluation on), ``freq_save_ckpt`` or ``freq_save_latest`` -- the
official ``update_EMA`` condition -- and at the end of training or on Ctrl-C, followed by the
grid, checkpoints and evaluation due at N. The re-collection runs on the side: the outputs see
the refreshed EMA, the training EMA's buffers are put back afterwards (and saved in
``latest.ckpt`` for resuming). The official code re-collects into the training EMA, and its
train-mode passes also advance the spectral-norm vectors, so there the trained EMA depends on
the output schedule (issue 27); ``bn_recollect_in_place: true`` does that, on the official
schedule (``cur_iter`` counted from 0: after iteration 1 and after iterations k * freq + 1), with
the official extra EMA step before the final re-collection
(scripts/compare_official_training.py checks it against the official code).
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

import torch
import torch.nn as nn

from ..allocator import tune_cpu_allocator
from ..loading.checkpoint import (CheckpointError, CheckpointWriteError, atomic_save, atomic_write, make_checkpoint,
                          read_checkpoint, remove_stale_temporaries)
from ..config import ConfigError, OASISConfig, RuntimeConfig, flat_fields
from ..data.loader import batches_per_epoch, epoch_loader, fixed_batch
from ..errors import DataError, OASISError, first_line, worker_error_text
from ..nn import Discriminator, Generator
from . import distributed as D
from .amp import Precision, prepare_module
from .ema import recollect_bn_stats, update_ema
from .logging import RunLogger, make_grid, sample_columns
from .signals import StopRequest
from .state import (buffers_of, capture_rng_state, load_buffers, preserved_rng, restore_rng_state,
                    seed_everything)
from .step import TrainStep

# Fields that may change when a run is resumed (schedule and bookkeeping); all others define the
# model, the data or the optimisation and must match the checkpoint.
RESUMABLE_CHANGES = {"iters", "num_epochs", "num_workers", "freq_print", "freq_save_latest",
                     "freq_save_ckpt", "freq_fid", "eval_metrics", "log_every", "lr_g", "lr_d",
                     "bn_stats_batches", "bn_recollect_in_place", "class_names", "palette"} | set(RuntimeConfig.__dataclass_fields__)
BN_EPOCH_BASE = 1_000_000  # data "epochs" of the BN re-collection passes: never those of training
GRID_SAMPLES = 8


class TrainingDiverged(OASISError):
    """A loss became NaN or inf; the run stopped without saving."""


class _DataFailure(Exception):
    """A training batch could not be loaded; `latest.ckpt` was saved first (becomes a DataError)."""


@dataclass
class TrainResult:
    out_dir: Path
    iteration: int
    status: str  # finished | interrupted
    checkpoint: Optional[Path]
    best: Optional[Dict[str, Any]] = None
    last_losses: Dict[str, float] = field(default_factory=dict)


def _metric_is_better(name: str, new: float, old: Optional[float]) -> bool:
    from ..metrics import lower_is_better

    if old is None:
        return True
    return new < old if lower_is_better(name) else new > old


def make_adam(params, lr: float, cfg: OASISConfig) -> torch.optim.Adam:
    """The official Adam; fused (one kernel over all tensors) when `cfg.fused_updates` is set and
    the device has the fused kernel. Same update up to float rounding; same state-dict format."""
    params = list(params)
    if cfg.fused_updates:
        try:
            return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2), fused=True)
        except RuntimeError:  # a device without the fused kernel: torch's default implementation
            pass
    return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2))


def write_config(cfg: OASISConfig, path: Path) -> None:
    import yaml

    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    atomic_write(path, lambda f: f.write(text), text=True)


class Trainer:
    def __init__(self, cfg: OASISConfig, data_root: Optional[Union[str, Path]], out_dir: Union[str, Path],
                 resume: bool = False, device: Optional[str] = None, eval_every: Optional[int] = None,
                 dataset=None, progress: bool = True, tensorboard: bool = True,
                 check_data: Union[bool, str] = True):
        self.ctx = D.init_distributed(device)
        try:
            self._setup(cfg, data_root, out_dir, resume, eval_every, dataset, progress, tensorboard,
                        check_data)
        except BaseException:
            D.cleanup(self.ctx)
            raise

    # ------------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------------
    def _setup(self, cfg, data_root, out_dir, resume, eval_every, dataset, progress, tensorboard, check_data):
        ctx = self.ctx
        if eval_every is not None:
            cfg = cfg.replace(freq_fid=int(eval_every))
        cfg.check_trainable()
        self.cfg, self.data_root = cfg, None if data_root is None else Path(data_root)
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        if ctx.is_main and self.ckpt_dir.is_dir():
            remove_stale_temporaries(self.ckpt_dir)  # of a save killed mid-write
        self.device = ctx.device
        if self.device.type == "cpu":
            tune_cpu_allocator(cfg.tune_malloc)
        latest = self.ckpt_dir / "latest.ckpt"
        resume_ckpt = None
        if resume and latest.is_file():
            resume_ckpt = read_checkpoint(latest)
            if resume_ckpt.get("training") is None:
                raise CheckpointError(f"{latest} holds no training state to resume from")
            self._check_resume_config(resume_ckpt, latest)
        elif not resume and latest.is_file():
            raise ConfigError(f"{self.out_dir} already holds a training run ({latest}); continue it with "
                              "--resume, or choose another --out")
        if cfg.batch_size % ctx.world_size:
            raise ConfigError(f"config field 'batch_size' = {cfg.batch_size}: the global batch must be "
                              f"divisible by the number of processes ({ctx.world_size})")
        self.batch = cfg.batch_size // ctx.world_size

        # --- data ---
        if dataset is None:
            dataset = self._build_dataset(check_data, progress)
        self.dataset = dataset
        self.bpe = batches_per_epoch(dataset, self.batch, ctx.world_size)
        if self.bpe < 1:
            raise DataError(f"the training set has {len(dataset)} images: fewer than one batch of "
                            f"{self.batch} per process; lower --batch-size")
        self.total = cfg.iters if cfg.iters is not None else cfg.num_epochs * self.bpe

        # --- evaluation ---
        self.eval_metrics = [m.strip() for m in (cfg.eval_metrics or "").split(",") if m.strip()]
        self.eval_on = bool(cfg.freq_fid) and bool(self.eval_metrics)
        if self.eval_on:
            self.eval_on = self._eval_preflight(explicit=eval_every is not None)

        # --- networks (identical on every rank), EMA as a copy of the initialised G ---
        seed_everything(cfg.seed)
        g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
        ema = copy.deepcopy(g).requires_grad_(False) if cfg.ema else None
        if resume_ckpt is not None:
            self._load_weights(resume_ckpt, g, d, ema, latest)
        g, d = g.to(self.device), d.to(self.device)
        g = D.convert_sync_batchnorm(g, ctx, cfg.param_free_norm)
        prepare_module(g, cfg.channels_last, cfg.compile)
        prepare_module(d, cfg.channels_last, cfg.compile)
        if ema is not None:
            ema = D.convert_sync_batchnorm(ema.to(self.device), ctx, cfg.param_free_norm)
            prepare_module(ema, cfg.channels_last, False)
            ema.eval()
        self.g, self.d, self.ema = g, d, ema
        self.g_train, self.d_train = D.wrap_ddp(g, ctx), D.wrap_ddp(d, ctx)
        self.opt_g = make_adam(g.parameters(), cfg.lr_g, cfg)
        self.opt_d = make_adam(d.parameters(), cfg.lr_d, cfg)
        self.precision = Precision(cfg.amp, self.device)
        vgg = None
        if cfg.add_vgg_loss:
            from ..losses import VGGLoss

            vgg = VGGLoss(cfg.vgg_weights).to(self.device)
        self.stepper = TrainStep(cfg, self.g_train, self.d_train, ema, self.opt_g, self.opt_d,
                                 self.precision, vgg)

        # --- training state ---
        self.step, self.best = 0, None
        seed_everything(cfg.seed + ctx.rank)  # per-rank z and LabelMix streams
        if resume_ckpt is not None:
            self._load_training_state(resume_ckpt["training"])
        self.resumed_from = self.step if resume_ckpt is not None else None
        self.recollected_at: Optional[int] = None
        self.periodic_done: Optional[int] = None  # the last iteration `_periodic` ran at
        self.grid_batch = None
        if ctx.is_main:
            write_config(cfg, self.out_dir / "config.yaml")
            info = {"data_root": None if self.data_root is None else str(self.data_root.resolve()),
                    "world_size": ctx.world_size, "device": str(self.device),
                    "total_iterations": self.total, "batches_per_epoch": self.bpe}
            (self.out_dir / "run.json").write_text(json.dumps(info, indent=1) + "\n")
        self.logger = RunLogger(self.out_dir, self.total, self.step, cfg.batch_size, enabled=ctx.is_main,
                                progress=progress, tensorboard=tensorboard)

    def _build_dataset(self, check_data: Union[bool, str], progress: bool):
        """The training set, after `oasis data check` of its every file (mode `check_data`: True
        is "auto"; False skips it). The main process checks, the others wait for its verdict."""
        if self.data_root is None:
            raise ConfigError("give --data-root (the dataset folder)")
        from ..data import build_dataset, check_dataset

        if check_data:
            mode = "auto" if check_data is True else check_data
            failure = None
            if self.ctx.is_main:
                report = check_dataset(self.cfg, self.data_root, mode=mode, splits=["train"],
                                       progress=progress and sys.stderr.isatty())
                failure = None if report.ok else report.format()
            failure = D.broadcast_object(self.ctx, failure)
            if failure:
                raise DataError(failure)
        return build_dataset(self.cfg, self.data_root, "train")

    def _eval_preflight(self, explicit: bool) -> bool:
        """Can the configured metrics run? Decided at start-up, never mid-run."""
        from ..metrics import check_metrics

        why = None
        if self.data_root is None:
            why = "evaluation needs --data-root"
        else:
            try:
                check_metrics(self.eval_metrics, self.cfg, self.data_root)
            except Exception as e:  # missing weights, unknown metric...
                why = str(e)
        if why is None:
            return True
        if explicit:
            raise ConfigError(f"--eval-every {self.cfg.freq_fid}: cannot evaluate "
                              f"{','.join(self.eval_metrics)}: {why}")
        if self.ctx.is_main:
            print(f"note: evaluation during training is off: {why} (set --eval-every 0 to silence)",
                  file=sys.stderr)
        return False

    def _check_resume_config(self, ckpt, path) -> None:
        old = flat_fields(ckpt["config"])
        new = self.cfg.to_dict()
        diff = [k for k in new if k in old and old[k] != new[k] and k not in RESUMABLE_CHANGES]
        if diff:
            items = ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in diff)
            raise ConfigError(f"cannot resume {path} with a different config ({items}); "
                              "resume with the run's own config.yaml")

    def _load_weights(self, ckpt, g, d, ema, path) -> None:
        try:
            g.load_state_dict(ckpt["generator"])
            d.load_state_dict(ckpt["discriminator"])
            if ema is not None:
                ema.load_state_dict(ckpt["ema"])
                extra = (ckpt["training"] or {}).get("ema_buffers")
                if extra:
                    load_buffers(ema, extra)
        except (RuntimeError, TypeError, KeyError) as e:
            raise CheckpointError(f"{path}: cannot restore the networks: {first_line(e)}") from None

    def _load_training_state(self, tr: Dict[str, Any]) -> None:
        cfg, ctx = self.cfg, self.ctx
        self.opt_g.load_state_dict(tr["opt_g"])
        self.opt_d.load_state_dict(tr["opt_d"])
        for grp in self.opt_g.param_groups:
            grp["lr"] = cfg.lr_g
        for grp in self.opt_d.param_groups:
            grp["lr"] = cfg.lr_d
        self.precision.load_state_dict(tr.get("precision"))
        self.step = int(tr["iteration"])
        self.best = tr.get("best")
        rngs = tr.get("rng") or []
        if len(rngs) == ctx.world_size:
            restore_rng_state(rngs[ctx.rank])
        else:
            seed_everything(cfg.seed + ctx.rank + 7919 * self.step)
            if ctx.is_main:
                print(f"note: the checkpoint was written by {len(rngs)} process(es), this run has "
                      f"{ctx.world_size}: random streams are re-seeded (the run continues, not bit-exactly)",
                      file=sys.stderr)
        if int(tr.get("batches_per_epoch", self.bpe)) != self.bpe and ctx.is_main:
            print("note: the number of batches per epoch changed since the checkpoint "
                  f"({tr.get('batches_per_epoch')} -> {self.bpe}); the data order differs from "
                  "an uninterrupted run", file=sys.stderr)

    # ------------------------------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------------------------------
    @property
    def output_generator(self) -> nn.Module:
        return self.ema if self.ema is not None else self.g

    def _ids(self, batch) -> torch.Tensor:
        return batch["label"].to(self.device).long()

    def recollect(self, step: int) -> None:
        """Refresh the EMA generator's BatchNorm statistics (all ranks take part)."""
        if self.ema is None or self.cfg.bn_stats_batches <= 0:
            return
        n_images = (self.cfg.bn_stats_batches + 1) * self.batch
        workers = min(self.cfg.num_workers, 2) if n_images > 64 else 0  # small passes: no spawn cost
        loader = epoch_loader(self.dataset, self.cfg, BN_EPOCH_BASE + step, self.batch, self.ctx.rank,
                              self.ctx.world_size, num_workers=workers,
                              pin_memory=self.device.type == "cuda", seed_offset=1)
        with preserved_rng(), self.precision.autocast():
            recollect_bn_stats(self.ema, (self._ids(b) for b in loader), self.cfg.bn_stats_batches)
        self.recollected_at = step

    @contextlib.contextmanager
    def output_state(self, step: int) -> Iterator[Optional[Dict[str, torch.Tensor]]]:
        """EMA with fresh BN statistics for the outputs at `step`; the training EMA's buffers are
        yielded (to be saved for resuming) and put back afterwards, so outputs never change the
        trained model. None is yielded where the EMA already holds its state of `step`
        (``bn_recollect_in_place``: re-collected into the training EMA)."""
        if self.ema is None or self.recollected_at == step:
            yield None
            return
        saved = buffers_of(self.ema)
        self.recollect(step)
        try:
            yield saved
        finally:
            load_buffers(self.ema, saved)
            self.recollected_at = None

    @torch.no_grad()
    def sample_grid(self, step: int) -> None:
        if not self.ctx.is_main:
            return
        cfg = self.cfg
        with preserved_rng():
            if self.grid_batch is None:
                self.grid_batch = fixed_batch(self.dataset, GRID_SAMPLES)
            label, real = self.grid_batch["label"], self.grid_batch["image"]
            ids = self._ids(self.grid_batch)
            z = torch.randn(label.shape[0], cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed))
            z = z.to(self.device)
            fakes = []
            with self.precision.autocast():
                self.g.eval()
                try:
                    fakes.append(self.g(ids, z).float())
                finally:
                    self.g.train()
                if self.ema is not None:
                    fakes.append(self.ema(ids, z).float())
        grid = make_grid(sample_columns(label, real, fakes, cfg))
        self.logger.grid(step, grid)

    def evaluate(self, step: int) -> Optional[Dict[str, float]]:
        """Rank 0 evaluates the output generator; returns the results (None elsewhere)."""
        results = None
        if self.ctx.is_main:
            from ..metrics import evaluate

            gen = self.output_generator
            was = gen.training
            gen.eval()
            t0 = time.perf_counter()
            try:
                with preserved_rng():
                    results = evaluate(gen, self.cfg, self.data_root, metrics=tuple(self.eval_metrics),
                                       progress=False, seed=self.cfg.seed)
            except Exception as e:
                from ..errors import is_user_error

                if not is_user_error(e):
                    raise
                self.logger.message(f"evaluation at iteration {step} failed and is switched off: {e}")
                self.eval_on = False
            finally:
                gen.train(was)
            if results:
                vals = {f"eval/{k}": float(v) for k, v in results.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)}
                self.logger.scalars(step, vals, eval_seconds=round(time.perf_counter() - t0, 1))
                self.logger.message(f"iteration {step}: " + ", ".join(
                    f"{k[5:]} {v:.4g}" for k, v in vals.items()))
        self.eval_on = D.broadcast_object(self.ctx, self.eval_on)
        return results

    def _best_update(self, step: int, results: Optional[Dict[str, float]]) -> bool:
        if not results:
            return False
        names = [m for m in (["fid"] + self.eval_metrics) if m in results and
                 isinstance(results[m], (int, float)) and math.isfinite(results[m])]
        if not names:
            return False
        name = names[0]
        old = self.best["value"] if self.best and self.best.get("metric") == name else None
        if _metric_is_better(name, float(results[name]), old):
            self.best = {"metric": name, "value": float(results[name]), "iteration": step}
            return True
        return False

    def _amp_scalars(self) -> Optional[Dict[str, float]]:
        """fp16: the steps the loss scalers skipped so far (non-finite gradients) and the scales."""
        p = self.precision
        if p.mode != "fp16":
            return None
        return {**{f"amp/skipped_steps_{k.upper()}": float(n) for k, n in p.skipped.items()},
                **{f"amp/scale_{k.upper()}": s.get_scale() for k, s in p.scalers.items()}}

    def _finite_weights(self) -> bool:
        params = list(self.g.parameters()) + list(self.d.parameters())
        return bool(torch.stack([p.detach().isfinite().all() for p in params]).all())

    def save(self, step: int, names: List[str], ema_buffers=None) -> Optional[Path]:
        """Write checkpoints/<name>.ckpt for each name (collective: every rank calls it)."""
        rngs = D.gather_objects(self.ctx, capture_rng_state())
        if not self.ctx.is_main:
            return None
        if not self._finite_weights():
            raise TrainingDiverged(f"the weights hold NaN/inf at iteration {step}: not saving; "
                                   f"{self._last_good()}")
        training = {
            "iteration": step, "epoch": step // self.bpe, "batches_per_epoch": self.bpe,
            "world_size": self.ctx.world_size, "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(), "precision": self.precision.state_dict(),
            "rng": rngs, "ema_buffers": ema_buffers, "best": self.best,
        }
        ckpt = make_checkpoint(self.cfg, ema=self.ema, generator=self.g, discriminator=self.d,
                               training=training, meta={"iteration": step, "run": str(self.out_dir)})
        path = None
        for name in names:
            path = self.ckpt_dir / f"{name}.ckpt"
            try:
                atomic_save(ckpt if name == "latest" else dict(ckpt, training=None), path)
            except CheckpointWriteError as e:  # disk full, read-only: say where and what is kept
                kept = ", kept" if (self.ckpt_dir / "latest.ckpt").is_file() else ""
                raise CheckpointWriteError(path, e.reason, f"iteration {step} is not saved; "
                                                           f"{self._last_good()}{kept}") from None
        return path

    def _last_good(self) -> str:
        latest = self.ckpt_dir / "latest.ckpt"
        if latest.is_file():
            try:
                it = torch.load(latest, map_location="cpu", weights_only=True)["training"]["iteration"]
                return f"the last good checkpoint is {latest} (iteration {it})"
            except Exception:
                return f"the last good checkpoint is {latest}"
        return "no checkpoint had been written yet"

    # ------------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------------
    def _scheduled(self, step: int) -> Dict[str, bool]:
        cfg = self.cfg

        def due(freq):
            return bool(freq) and step % freq == 0

        return {"grid": due(cfg.freq_print), "eval": self.eval_on and due(cfg.freq_fid),
                "ckpt": due(cfg.freq_save_ckpt), "latest": due(cfg.freq_save_latest)}

    def _official_recollection_due(self, step: int) -> bool:
        """The official `update_EMA` condition after `step` completed iterations: it counts
        `cur_iter` from 0, so it re-collects after the first iteration and after iterations
        k * freq + 1 of each output frequency (`freq_fid` whether evaluation runs or not)."""
        cfg, cur_iter = self.cfg, step - 1
        freqs = [f for f in (cfg.freq_print, cfg.freq_fid, cfg.freq_save_ckpt, cfg.freq_save_latest) if f]
        return cur_iter == 0 or any(cur_iter % f == 0 for f in freqs)

    def _periodic(self, step: int) -> None:
        self.periodic_done = step
        if self.cfg.bn_recollect_in_place and self._official_recollection_due(step):
            self.recollect(step)  # the official update_EMA: into the training EMA, on its schedule
        due = self._scheduled(step)
        if not any(due.values()):
            return
        with self.output_state(step) as train_buffers:
            if due["grid"]:
                self.sample_grid(step)
            if due["ckpt"]:
                self.save(step, [f"iter_{step}"])
            if due["latest"]:
                self.save(step, ["latest"], ema_buffers=train_buffers)
            if due["eval"]:
                results = self.evaluate(step)
                if D.broadcast_object(self.ctx, self._best_update(step, results)):
                    self.save(step, ["best"])

    def _finish(self, step: int, interrupted: bool) -> Optional[Path]:
        """Grid, evaluation and checkpoints at the end of the run (or on a stop request)."""
        due = self._scheduled(step) if self.periodic_done == step else {}
        if self.cfg.bn_recollect_in_place and self.ema is not None and not interrupted:
            # the official end of training: update_EMA(force_run_stats=True) makes one more EMA
            # step with the last G and re-collects into the training EMA; every output follows
            update_ema(self.ema, self.g, self.cfg.ema_decay, self.cfg.fused_updates)
            self.recollect(step)
            due = {}
        grid = not due.get("grid") and not interrupted
        names = [] if due.get("latest") else ["latest"]
        if not interrupted and self.cfg.freq_save_ckpt and not due.get("ckpt"):
            names.append(f"iter_{step}")
        evaluate = self.eval_on and not interrupted and not due.get("eval")
        if not (grid or names or evaluate):
            return self.ckpt_dir / "latest.ckpt"
        with self.output_state(step) as train_buffers:
            if grid:
                self.sample_grid(step)
            if evaluate:
                results = self.evaluate(step)
                if D.broadcast_object(self.ctx, self._best_update(step, results)):
                    names.append("best")
            path = self.save(step, names, ema_buffers=train_buffers) if names else None
        return path or self.ckpt_dir / "latest.ckpt"

    def _data_failure(self, step: int, error: Optional[BaseException]) -> "_DataFailure":
        """A batch could not be loaded (on this rank or another): save the last finished iteration,
        then stop with the file's error. Every rank gets here together (collective save)."""
        texts = [t for t in D.gather_objects(self.ctx, None if error is None else worker_error_text(error)) if t]
        try:
            path = self.save(step, ["latest"])
            saved = f"Saved {path} (iteration {step}); fix" if path else "Fix"
        except Exception as e:
            saved = f"Saving failed too ({first_line(e)}): {self._last_good()}. Fix"
        D.barrier(self.ctx)  # no process tears the group down while the main one still writes
        return _DataFailure(f"training stopped at iteration {step} on a file it could not load: {texts[0]}. "
                            f"{saved} or remove the file (`oasis data check --mode full` lists every bad "
                            "file), then continue with --resume")

    def _save_after_error(self, step: int, error: BaseException, intact: bool) -> None:
        """Save `latest.ckpt` of the last finished iteration before an error ends the run: unless
        the error struck inside an optimiser update (weights half updated), or under torchrun,
        where a save needs every process and the others do not know of this one's error."""
        why = (f"the error struck during the update of iteration {step + 1}" if not intact else
               "under torchrun a save needs every process" if self.ctx.enabled else None)
        if why is None:
            try:
                path = self.save(step, ["latest"])
                self.logger.message(f"error at iteration {step}: {first_line(error)}; saved {path} "
                                    "(continue with --resume once the cause is fixed)")
                return
            except Exception as e2:
                why = f"saving failed too ({first_line(e2)})"
        self.logger.message(f"error at iteration {step}: {first_line(error)}; not saved ({why}); "
                            f"{self._last_good()}")

    def run(self) -> TrainResult:
        cfg, ctx = self.cfg, self.ctx
        step, total = self.step, self.total
        status, last = "finished", {}
        if ctx.is_main:
            nG = sum(p.numel() for p in self.g.parameters())
            nD = sum(p.numel() for p in self.d.parameters())
            what = "resuming at iteration %d of" % step if self.resumed_from is not None else "training"
            self.logger.message(
                f"{what} {total} iterations: preset {cfg.preset}, {cfg.height}x{cfg.width}, "
                f"{cfg.semantic_nc} classes, G {nG / 1e6:.2f}M / D {nD / 1e6:.2f}M params, batch "
                f"{cfg.batch_size} ({ctx.world_size} x {self.batch}) on {self.device}, "
                f"{self.bpe} batches per epoch; run dir {self.out_dir}")
        stage, updates = "start", 0  # the loop's stage: "data", "update", "after" (an iteration ended)
        try:
            with StopRequest() as stop:
                stopping = False
                while step < total and not stopping:
                    epoch, offset = divmod(step, self.bpe)
                    loader = epoch_loader(self.dataset, cfg, epoch, self.batch, ctx.rank, ctx.world_size,
                                          start_batch=offset, pin_memory=self.device.type == "cuda")
                    batches = iter(loader)
                    while True:
                        stage, failed = "data", None
                        try:
                            batch = next(batches)
                        except StopIteration:
                            break
                        except Exception as e:
                            # A worker's error re-raised here sits in a reference cycle whose
                            # frames hold the iterator: free them, or the workers live on
                            # until a garbage collection (see the `finally` below).
                            traceback.clear_frames(e.__traceback__)
                            if stop.requested and isinstance(e, RuntimeError):
                                stopping = True  # workers killed with us: save what we have
                                break
                            failed = e
                        if D.any_true(ctx, failed is not None)[0]:  # every rank stops together
                            raise self._data_failure(step, failed)
                        stage, updates = "update", self.precision.updates
                        losses = self.stepper.step(batch, self.device)
                        step += 1
                        stage = "after"
                        names = list(losses)
                        values = torch.stack([losses[k].float() for k in names]).cpu().tolist()
                        last = dict(zip(names, values))
                        bad = not all(math.isfinite(v) for v in values)
                        stop_now, bad = D.any_true(ctx, stop.requested, bad)
                        if bad:
                            terms = ", ".join(f"{k} {v:.4g}" for k, v in last.items())
                            raise TrainingDiverged(
                                f"a loss became NaN or inf at iteration {step} ({terms}); the run "
                                f"stopped without saving: {self._last_good()}. Lower the learning "
                                "rates, or turn mixed precision off (amp=none), and resume or restart.")
                        self.step = step
                        self.logger.add(last)
                        self.logger.tick(step)
                        if cfg.log_every and step % cfg.log_every == 0:
                            self.logger.flush(step, epoch, {"G": self.opt_g.param_groups[0]["lr"],
                                                            "D": self.opt_d.param_groups[0]["lr"]},
                                              self._amp_scalars())
                        self._periodic(step)
                        if stop_now or step >= total:
                            stopping = stop_now
                            break
                stage = "finish"
                if stopping:
                    status = "interrupted"
                    path = self._finish(step, interrupted=True)
                    self.logger.message(f"stopped ({stop.name or 'signal'}) at iteration {step}: saved "
                                        f"{path}; continue with --resume")
                else:
                    path = self._finish(step, interrupted=False)
                    self.logger.message(f"finished {step} iterations: {path}")
        except _DataFailure as e:
            raise DataError(str(e)) from None
        except (TrainingDiverged, CheckpointError):
            raise
        except Exception as e:
            self._save_after_error(step, e, intact=stage != "update" or self.precision.updates == updates)
            raise
        finally:
            # An error's traceback keeps this frame alive: let the iterator go, so its DataLoader
            # workers (which ignore SIGTERM, see data.loader) shut down now, not at an exit that
            # would wait on them forever.
            batches = loader = failed = None  # noqa: F841
            self.logger.close()
            D.cleanup(ctx)
        return TrainResult(self.out_dir, step, status, path if ctx.is_main else None, self.best, last)


def train(cfg: OASISConfig, data_root: Optional[Union[str, Path]], out_dir: Union[str, Path],
          resume: bool = False, device: Optional[str] = None, eval_every: Optional[int] = None,
          dataset=None, progress: bool = True, tensorboard: bool = True,
          check_data: bool = True) -> TrainResult:
    """Train OASIS on `data_root` into the run directory `out_dir` (see the module docstring).

    `resume`: continue from ``out_dir/checkpoints/latest.ckpt`` (a fresh start when there is
    none yet). `device`: cpu, cuda, cuda:K (default: cuda when available). Under torchrun each
    process joins the process group and trains its share. `eval_every`: evaluate every N
    iterations (overrides ``cfg.freq_fid``; an explicit value fails at start-up when the metrics
    cannot run). `dataset`: an already built training dataset (then `data_root` is only used for
    evaluation).
    """
    trainer = Trainer(cfg, data_root, out_dir, resume=resume, device=device, eval_every=eval_every,
                      dataset=dataset, progress=progress, tensorboard=tensorboard, check_data=check_data)
    return trainer.run()
