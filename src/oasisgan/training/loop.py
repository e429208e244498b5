"""The training loop: `Trainer(cfg, data_root, out_dir, ...).run()`; `oasisgan.training.train` is
the entry point that builds it with the evaluation of `oasisgan.metrics`.

Run directory::

    config.yaml                the resolved config of the run
    checkpoints/latest.ckpt    everything needed to resume (optimisers, EMA, RNG, iteration)
    checkpoints/iter_<N>.ckpt  weights every ``freq_save_ckpt`` iterations (and at the end)
    checkpoints/best.ckpt      weights of the best evaluation so far (``freq_fid`` > 0)
    samples/iter_<N>.png       label | real | G | EMA G, every ``freq_print`` iterations
    tb/                        TensorBoard
    log.jsonl                  the same scalars as JSON lines

Every checkpoint loads with ``oasisgan.load``. The parts, one concern each:
`training.build` (set-up and resume), `training.step` (one G and one D update),
`training.periodic` (EMA BatchNorm re-collection, grids, evaluation, the checkpoints due),
`training.checkpoints` (writing them; what is saved when an error ends the run).

Schedule (counted in completed iterations N): the EMA generator's BatchNorm statistics are
re-collected whenever N is a multiple of ``freq_print``, ``freq_fid`` (evaluation on),
``freq_save_ckpt`` or ``freq_save_latest`` -- the official ``update_EMA`` condition -- and at the
end of training or on Ctrl-C, followed by the grid, checkpoints and evaluation due at N. The
re-collection runs on the side: the outputs see the refreshed EMA, the training EMA's buffers are
put back afterwards (and saved in ``latest.ckpt`` for resuming). The official code re-collects
into the training EMA, and its train-mode passes also advance the spectral-norm vectors, so there
the trained EMA depends on the output schedule (issue 27); ``bn_recollect_in_place: true`` does
that, on the official schedule (``cur_iter`` counted from 0: after iteration 1 and after
iterations k * freq + 1), with the official extra EMA step before the final re-collection
(scripts/compare_official_training.py checks it against the official code).
"""
from __future__ import annotations

import json
import math
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch

from ..allocator import tune_cpu_allocator
from ..config import ConfigError, OASISConfig
from ..data.loader import batches_per_epoch, epoch_loader
from ..errors import DataError
from ..loading.checkpoint import CheckpointError
from ..losses import VGGLoss
from . import distributed as D
from .amp import Precision
from .build import (build_networks, build_training_set, load_training_state, make_adam, read_resume_checkpoint,
                    write_config)
from .checkpoints import DataFailure, RunCheckpoints, TrainingDiverged
from .logging import RunLogger
from .periodic import Evaluator, PeriodicWork, evaluation_plan
from .signals import StopRequest
from .state import seed_everything
from .step import TrainStep

__all__ = ["Trainer", "TrainResult", "TrainingDiverged"]


@dataclass
class TrainResult:
    out_dir: Path
    iteration: int
    status: str  # finished | interrupted
    checkpoint: Optional[Path]
    best: Optional[Dict[str, Any]] = None
    last_losses: Dict[str, float] = field(default_factory=dict)


class Trainer:
    """One training run. `evaluator`: the evaluation during training (``--eval-every``), e.g.
    ``oasisgan.metrics.TrainingEvaluator()``; None: no evaluation. See `oasisgan.training.train`
    for the other arguments."""

    def __init__(self, cfg: OASISConfig, data_root: Optional[Union[str, Path]], out_dir: Union[str, Path],
                 resume: bool = False, device: Optional[str] = None, eval_every: Optional[int] = None,
                 dataset=None, progress: bool = True, tensorboard: bool = True,
                 check_data: Union[bool, str] = True, evaluator: Optional[Evaluator] = None):
        self.ctx = D.init_distributed(device)
        try:
            self._setup(cfg, data_root, out_dir, resume, eval_every, dataset, progress, tensorboard,
                        check_data, evaluator)
        except BaseException:
            D.cleanup(self.ctx)
            raise

    def _setup(self, cfg, data_root, out_dir, resume, eval_every, dataset, progress, tensorboard, check_data,
               evaluator):
        ctx = self.ctx
        if eval_every is not None:
            cfg = cfg.replace(freq_fid=int(eval_every))
        cfg.check_trainable()
        self.cfg, self.data_root = cfg, None if data_root is None else Path(data_root)
        self.out_dir = Path(out_dir)
        self.device = ctx.device
        if self.device.type == "cpu":
            tune_cpu_allocator(cfg.tune_malloc)
        resume_ckpt = read_resume_checkpoint(cfg, ctx, self.out_dir, resume)
        if cfg.batch_size % ctx.world_size:
            raise ConfigError(f"config field 'batch_size' = {cfg.batch_size}: the global batch must be "
                              f"divisible by the number of processes ({ctx.world_size})")
        self.batch = cfg.batch_size // ctx.world_size

        # --- data ---
        if dataset is None:
            dataset = build_training_set(cfg, self.data_root, ctx, check_data, progress)
        self.dataset = dataset
        self.bpe = batches_per_epoch(dataset, self.batch, ctx.world_size)
        if self.bpe < 1:
            raise DataError(f"the training set has {len(dataset)} images: fewer than one batch of "
                            f"{self.batch} per process; lower --batch-size")
        self.total = cfg.iters if cfg.iters is not None else cfg.num_epochs * self.bpe
        eval_metrics, eval_on = evaluation_plan(cfg, ctx, self.data_root, evaluator, explicit=eval_every is not None)

        # --- networks (identical on every rank), optimisers, the step ---
        latest = self.out_dir / "checkpoints" / "latest.ckpt"
        self.nets = build_networks(cfg, ctx, self.device, resume_ckpt, latest)
        g, d, ema = self.nets.g, self.nets.d, self.nets.ema
        self.g_train, self.d_train = D.wrap_ddp(g, ctx), D.wrap_ddp(d, ctx)
        self.opt_g = make_adam(g.parameters(), cfg.lr_g, cfg)
        self.opt_d = make_adam(d.parameters(), cfg.lr_d, cfg)
        self.precision = Precision(cfg.amp, self.device)
        vgg = VGGLoss(cfg.vgg_weights).to(self.device) if cfg.add_vgg_loss else None
        self.stepper = TrainStep(cfg, self.g_train, self.d_train, ema, self.opt_g, self.opt_d,
                                 self.precision, vgg)

        # --- training state ---
        self.step, best = 0, None
        seed_everything(cfg.seed + ctx.rank)  # per-rank z and LabelMix streams
        if resume_ckpt is not None:
            self.step, best = load_training_state(resume_ckpt["training"], cfg, ctx, self.opt_g, self.opt_d,
                                                  self.precision, self.bpe)
        self.resumed_from = self.step if resume_ckpt is not None else None
        if ctx.is_main:
            write_config(cfg, self.out_dir / "config.yaml")
            info = {"data_root": None if self.data_root is None else str(self.data_root.resolve()),
                    "world_size": ctx.world_size, "device": str(self.device),
                    "total_iterations": self.total, "batches_per_epoch": self.bpe}
            (self.out_dir / "run.json").write_text(json.dumps(info, indent=1) + "\n")
        self.logger = RunLogger(self.out_dir, self.total, self.step, cfg.batch_size, enabled=ctx.is_main,
                                progress=progress, tensorboard=tensorboard)
        self.checkpoints = RunCheckpoints(cfg, ctx, self.out_dir, self.nets, self._training_state,
                                          self.logger.message)
        self.periodic = PeriodicWork(cfg, ctx, self.nets, dataset, self.batch, self.precision, self.logger,
                                     self.checkpoints.save, self.data_root, evaluator, eval_metrics, eval_on,
                                     best)

    @property
    def g(self) -> torch.nn.Module:
        return self.nets.g

    @property
    def d(self) -> torch.nn.Module:
        return self.nets.d

    @property
    def ema(self) -> Optional[torch.nn.Module]:
        return self.nets.ema

    @property
    def best(self) -> Optional[Dict[str, Any]]:
        return self.periodic.best

    def _training_state(self, step: int, rngs: List[Any], ema_buffers) -> Dict[str, Any]:
        """What `latest.ckpt` holds besides the weights, at iteration `step`."""
        return {"iteration": step, "epoch": step // self.bpe, "batches_per_epoch": self.bpe,
                "world_size": self.ctx.world_size, "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "precision": self.precision.state_dict(),
                "rng": rngs, "ema_buffers": ema_buffers, "best": self.best}

    def _amp_scalars(self) -> Optional[Dict[str, float]]:
        """fp16: the steps the loss scalers skipped so far (non-finite gradients) and the scales."""
        p = self.precision
        if p.mode != "fp16":
            return None
        return {**{f"amp/skipped_steps_{k.upper()}": float(n) for k, n in p.skipped.items()},
                **{f"amp/scale_{k.upper()}": s.get_scale() for k, s in p.scalers.items()}}

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
                            raise self.checkpoints.data_failure(step, failed)
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
                                f"stopped without saving: {self.checkpoints.last_good()}. Lower the learning "
                                "rates, or turn mixed precision off (amp=none), and resume or restart.")
                        self.step = step
                        self.logger.add(last)
                        self.logger.tick(step)
                        if cfg.log_every and step % cfg.log_every == 0:
                            self.logger.flush(step, epoch, {"G": self.opt_g.param_groups[0]["lr"],
                                                            "D": self.opt_d.param_groups[0]["lr"]},
                                              self._amp_scalars())
                        self.periodic.at_iteration(step)
                        if stop_now or step >= total:
                            stopping = stop_now
                            break
                stage = "finish"
                if stopping:
                    status = "interrupted"
                    path = self.periodic.at_end(step, True, self.checkpoints.latest)
                    self.logger.message(f"stopped ({stop.name or 'signal'}) at iteration {step}: saved "
                                        f"{path}; continue with --resume")
                else:
                    path = self.periodic.at_end(step, False, self.checkpoints.latest)
                    self.logger.message(f"finished {step} iterations: {path}")
        except DataFailure as e:
            raise DataError(str(e)) from None
        except (TrainingDiverged, CheckpointError):
            raise
        except Exception as e:
            self.checkpoints.save_after_error(step, e, intact=stage != "update" or self.precision.updates == updates)
            raise
        finally:
            # An error's traceback keeps this frame alive: let the iterator go, so its DataLoader
            # workers (which ignore SIGTERM, see data.loader) shut down now, not at an exit that
            # would wait on them forever.
            batches = loader = failed = None  # noqa: F841
            self.logger.close()
            D.cleanup(ctx)
        return TrainResult(self.out_dir, step, status, path if ctx.is_main else None, self.best, last)
