"""The work a run does between iterations: EMA BatchNorm re-collection, sample grids,
evaluation (with the best checkpoint) and the checkpoints due, on the schedule of the config.

Schedule (counted in completed iterations N): outputs are due when N is a multiple of
``freq_print`` (grid), ``freq_fid`` (evaluation, when on), ``freq_save_ckpt`` (``iter_<N>``),
``freq_save_latest`` (``latest``); each output batch sees the EMA with BatchNorm statistics
re-collected on the side (`output_state`). With ``bn_recollect_in_place`` the official
``update_EMA`` re-collects into the training EMA instead (`official_recollection_due`).

Evaluation is handed in: an `Evaluator` (``oasisgan.metrics.TrainingEvaluator`` is the one
`oasisgan.training.train` builds); this module imports no metric.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple

import torch
import torch.nn as nn

from ..config import ConfigError, OASISConfig
from ..data.loader import epoch_loader, fixed_batch
from ..errors import is_user_error
from . import distributed as D
from .amp import Precision
from .build import Networks
from .ema import recollect_bn_stats, update_ema
from .logging import RunLogger, make_grid, sample_columns
from .state import buffers_of, load_buffers, preserved_rng

BN_EPOCH_BASE = 1_000_000  # data "epochs" of the BN re-collection passes: never those of training
GRID_SAMPLES = 8


class Evaluator(Protocol):
    """What the loop needs of an evaluation (see `oasisgan.metrics.TrainingEvaluator`)."""

    def check(self, metrics: Sequence[str], cfg: OASISConfig, data_root: Path) -> None:
        """Raise when `metrics` cannot run (missing weights, unknown name): decided at start-up."""

    def __call__(self, generator: nn.Module, metrics: Sequence[str], cfg: OASISConfig,
                 data_root: Path) -> Dict[str, float]:
        """Evaluate `generator` (in eval mode; the caller keeps the RNG streams)."""

    def lower_is_better(self, metric: str) -> bool:
        """The direction of `metric`, for the best checkpoint."""


def evaluation_plan(cfg: OASISConfig, ctx: D.DistContext, data_root: Optional[Path],
                    evaluator: Optional[Evaluator], explicit: bool) -> Tuple[List[str], bool]:
    """(the metrics of ``cfg.eval_metrics``, whether evaluation runs): decided at start-up,
    never mid-run. `explicit` (``--eval-every`` given): fail when the metrics cannot run;
    otherwise evaluation is switched off with a note."""
    metrics = [m.strip() for m in (cfg.eval_metrics or "").split(",") if m.strip()]
    if not (cfg.freq_fid and metrics):
        return metrics, False
    why = None
    if data_root is None:
        why = "evaluation needs --data-root"
    elif evaluator is None:
        why = "no evaluator was handed in (Trainer(..., evaluator=...))"
    else:
        try:
            evaluator.check(metrics, cfg, data_root)
        except Exception as e:  # missing weights, unknown metric...
            why = str(e)
    if why is None:
        return metrics, True
    if explicit:
        raise ConfigError(f"--eval-every {cfg.freq_fid}: cannot evaluate {','.join(metrics)}: {why}")
    if ctx.is_main:
        print(f"note: evaluation during training is off: {why} (set --eval-every 0 to silence)",
              file=sys.stderr)
    return metrics, False


def official_recollection_due(cfg: OASISConfig, step: int) -> bool:
    """The official `update_EMA` condition after `step` completed iterations: it counts
    `cur_iter` from 0, so it re-collects after the first iteration and after iterations
    k * freq + 1 of each output frequency (`freq_fid` whether evaluation runs or not)."""
    cur_iter = step - 1
    freqs = [f for f in (cfg.freq_print, cfg.freq_fid, cfg.freq_save_ckpt, cfg.freq_save_latest) if f]
    return cur_iter == 0 or any(cur_iter % f == 0 for f in freqs)


class PeriodicWork:
    """The outputs of a run: `at_iteration(N)` after each iteration, `at_end(N)` once.
    `save(step, names, ema_buffers)` writes checkpoints (``RunCheckpoints.save``)."""

    def __init__(self, cfg: OASISConfig, ctx: D.DistContext, nets: Networks, dataset, batch: int,
                 precision: Precision, logger: RunLogger, save: Callable[..., Optional[Path]],
                 data_root: Optional[Path], evaluator: Optional[Evaluator], eval_metrics: List[str],
                 eval_on: bool, best: Optional[Dict] = None):
        self.cfg, self.ctx, self.nets, self.dataset, self.batch = cfg, ctx, nets, dataset, batch
        self.device = ctx.device
        self.precision, self.logger, self.save = precision, logger, save
        self.data_root, self.evaluator = data_root, evaluator
        self.eval_metrics, self.eval_on, self.best = eval_metrics, eval_on, best
        self.recollected_at: Optional[int] = None
        self.done_at: Optional[int] = None  # the last iteration `at_iteration` ran at
        self.grid_batch = None

    @property
    def output_generator(self) -> nn.Module:
        return self.nets.ema if self.nets.ema is not None else self.nets.g

    def _ids(self, batch) -> torch.Tensor:
        return batch["label"].to(self.device).long()

    # ---- schedule ----------------------------------------------------------------------------
    def scheduled(self, step: int) -> Dict[str, bool]:
        cfg = self.cfg

        def due(freq):
            return bool(freq) and step % freq == 0

        return {"grid": due(cfg.freq_print), "eval": self.eval_on and due(cfg.freq_fid),
                "ckpt": due(cfg.freq_save_ckpt), "latest": due(cfg.freq_save_latest)}

    def at_iteration(self, step: int) -> None:
        self.done_at = step
        if self.cfg.bn_recollect_in_place and official_recollection_due(self.cfg, step):
            self.recollect(step)  # the official update_EMA: into the training EMA, on its schedule
        due = self.scheduled(step)
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
                if D.broadcast_object(self.ctx, self.best_update(step, results)):
                    self.save(step, ["best"])

    def at_end(self, step: int, interrupted: bool, latest: Path) -> Path:
        """Grid, evaluation and checkpoints at the end of the run (or on a stop request)."""
        cfg, ema = self.cfg, self.nets.ema
        due = self.scheduled(step) if self.done_at == step else {}
        if cfg.bn_recollect_in_place and ema is not None and not interrupted:
            # the official end of training: update_EMA(force_run_stats=True) makes one more EMA
            # step with the last G and re-collects into the training EMA; every output follows
            update_ema(ema, self.nets.g, cfg.ema_decay, cfg.fused_updates)
            self.recollect(step)
            due = {}
        grid = not due.get("grid") and not interrupted
        names = [] if due.get("latest") else ["latest"]
        if not interrupted and cfg.freq_save_ckpt and not due.get("ckpt"):
            names.append(f"iter_{step}")
        evaluate = self.eval_on and not interrupted and not due.get("eval")
        if not (grid or names or evaluate):
            return latest
        with self.output_state(step) as train_buffers:
            if grid:
                self.sample_grid(step)
            if evaluate:
                results = self.evaluate(step)
                if D.broadcast_object(self.ctx, self.best_update(step, results)):
                    names.append("best")
            path = self.save(step, names, ema_buffers=train_buffers) if names else None
        return path or latest

    # ---- EMA BatchNorm statistics --------------------------------------------------------------
    def recollect(self, step: int) -> None:
        """Refresh the EMA generator's BatchNorm statistics (all ranks take part)."""
        cfg, ema = self.cfg, self.nets.ema
        if ema is None or cfg.bn_stats_batches <= 0:
            return
        n_images = (cfg.bn_stats_batches + 1) * self.batch
        workers = min(cfg.num_workers, 2) if n_images > 64 else 0  # small passes: no spawn cost
        loader = epoch_loader(self.dataset, cfg, BN_EPOCH_BASE + step, self.batch, self.ctx.rank,
                              self.ctx.world_size, num_workers=workers,
                              pin_memory=self.device.type == "cuda", seed_offset=1)
        with preserved_rng(), self.precision.autocast():
            recollect_bn_stats(ema, (self._ids(b) for b in loader), cfg.bn_stats_batches)
        self.recollected_at = step

    @contextlib.contextmanager
    def output_state(self, step: int) -> Iterator[Optional[Dict[str, torch.Tensor]]]:
        """EMA with fresh BN statistics for the outputs at `step`; the training EMA's buffers are
        yielded (to be saved for resuming) and put back afterwards, so outputs never change the
        trained model. None is yielded where the EMA already holds its state of `step`
        (``bn_recollect_in_place``: re-collected into the training EMA)."""
        ema = self.nets.ema
        if ema is None or self.recollected_at == step:
            yield None
            return
        saved = buffers_of(ema)
        self.recollect(step)
        try:
            yield saved
        finally:
            load_buffers(ema, saved)
            self.recollected_at = None

    # ---- outputs --------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_grid(self, step: int) -> None:
        if not self.ctx.is_main:
            return
        cfg, g, ema = self.cfg, self.nets.g, self.nets.ema
        with preserved_rng():
            if self.grid_batch is None:
                self.grid_batch = fixed_batch(self.dataset, GRID_SAMPLES)
            label, real = self.grid_batch["label"], self.grid_batch["image"]
            ids = self._ids(self.grid_batch)
            z = torch.randn(label.shape[0], cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed))
            z = z.to(self.device)
            fakes = []
            with self.precision.autocast():
                g.eval()
                try:
                    fakes.append(g(ids, z).float())
                finally:
                    g.train()
                if ema is not None:
                    fakes.append(ema(ids, z).float())
        grid = make_grid(sample_columns(label, real, fakes, cfg))
        self.logger.grid(step, grid)

    def evaluate(self, step: int) -> Optional[Dict[str, float]]:
        """Rank 0 evaluates the output generator; returns the results (None elsewhere). A user
        error (e.g. a file gone missing) switches evaluation off for the rest of the run."""
        results = None
        if self.ctx.is_main:
            gen = self.output_generator
            was = gen.training
            gen.eval()
            t0 = time.perf_counter()
            try:
                with preserved_rng():
                    results = self.evaluator(gen, tuple(self.eval_metrics), self.cfg, self.data_root)
            except Exception as e:
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

    def best_update(self, step: int, results: Optional[Dict[str, float]]) -> bool:
        """Whether `results` beat the best so far (then `best` is updated): judged by FID when
        measured, else by the first finite metric of ``eval_metrics``."""
        if not results:
            return False
        names = [m for m in (["fid"] + self.eval_metrics) if m in results and
                 isinstance(results[m], (int, float)) and math.isfinite(results[m])]
        if not names:
            return False
        name = names[0]
        value = float(results[name])
        old = self.best["value"] if self.best and self.best.get("metric") == name else None
        lower = self.evaluator.lower_is_better(name)
        if old is None or (value < old if lower else value > old):
            self.best = {"metric": name, "value": value, "iteration": step}
            return True
        return False
