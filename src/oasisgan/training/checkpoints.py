"""A run's ``checkpoints/`` folder: collective saves, and what is said when a save is not possible.

`latest.ckpt` holds the training state (optimisers, loss scalers, RNG streams of every rank,
the training EMA's buffers, the best evaluation); `iter_<N>.ckpt` and `best.ckpt` hold weights
only. Every file is written atomically (`loading.checkpoint.atomic_save`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from ..config import OASISConfig
from ..errors import DataError, OASISError, first_line, worker_error_text
from ..loading.checkpoint import CheckpointWriteError, atomic_save, make_checkpoint
from . import distributed as D
from .build import Networks
from .state import capture_rng_state


class TrainingDiverged(OASISError):
    """A loss became NaN or inf; the run stopped without saving."""


class DataFailure(DataError):
    """A training batch could not be loaded; `latest.ckpt` was saved first. The loop re-raises it
    as a plain DataError; its own class keeps it apart from the DataErrors of other stages."""


class RunCheckpoints:
    """Writes `out_dir/checkpoints/<name>.ckpt` of `nets`; `training_state(step, rngs, ema_buffers)`
    gives the resume state of iteration `step` (the RNG states gathered from every rank)."""

    def __init__(self, cfg: OASISConfig, ctx: D.DistContext, out_dir: Path, nets: Networks,
                 training_state: Callable[[int, List[Any], Any], Dict[str, Any]], message: Callable[[str], None]):
        self.cfg, self.ctx, self.out_dir, self.nets = cfg, ctx, out_dir, nets
        self.training_state, self.message = training_state, message
        self.dir = out_dir / "checkpoints"

    @property
    def latest(self) -> Path:
        return self.dir / "latest.ckpt"

    def save(self, step: int, names: List[str], ema_buffers=None) -> Optional[Path]:
        """Write checkpoints/<name>.ckpt for each name (collective: every rank calls it)."""
        rngs = D.gather_objects(self.ctx, capture_rng_state())
        if not self.ctx.is_main:
            return None
        nets = self.nets
        if not finite_weights(nets):
            raise TrainingDiverged(f"the weights hold NaN/inf at iteration {step}: not saving; "
                                   f"{self.last_good()}")
        ckpt = make_checkpoint(self.cfg, ema=nets.ema, generator=nets.g, discriminator=nets.d,
                               training=self.training_state(step, rngs, ema_buffers),
                               meta={"iteration": step, "run": str(self.out_dir)})
        path = None
        for name in names:
            path = self.dir / f"{name}.ckpt"
            try:
                atomic_save(ckpt if name == "latest" else dict(ckpt, training=None), path)
            except CheckpointWriteError as e:  # disk full, read-only: say where and what is kept
                kept = ", kept" if self.latest.is_file() else ""
                raise CheckpointWriteError(path, e.reason, f"iteration {step} is not saved; "
                                                           f"{self.last_good()}{kept}") from None
        return path

    def last_good(self) -> str:
        latest = self.latest
        if latest.is_file():
            try:
                it = torch.load(latest, map_location="cpu", weights_only=True)["training"]["iteration"]
                return f"the last good checkpoint is {latest} (iteration {it})"
            except Exception:
                return f"the last good checkpoint is {latest}"
        return "no checkpoint had been written yet"

    def data_failure(self, step: int, error: Optional[BaseException]) -> DataFailure:
        """A batch could not be loaded (on this rank or another): save the last finished iteration,
        then stop with the file's error. Every rank gets here together (collective save)."""
        texts = [t for t in D.gather_objects(self.ctx, None if error is None else worker_error_text(error)) if t]
        try:
            path = self.save(step, ["latest"])
            saved = f"Saved {path} (iteration {step}); fix" if path else "Fix"
        except Exception as e:
            saved = f"Saving failed too ({first_line(e)}): {self.last_good()}. Fix"
        D.barrier(self.ctx)  # no process tears the group down while the main one still writes
        return DataFailure(f"training stopped at iteration {step} on a file it could not load: {texts[0]}. "
                           f"{saved} or remove the file (`oasis data check --mode full` lists every bad "
                           "file), then continue with --resume")

    def save_after_error(self, step: int, error: BaseException, intact: bool) -> None:
        """Save `latest.ckpt` of the last finished iteration before an error ends the run: unless
        the error struck inside an optimiser update (weights half updated), or under torchrun,
        where a save needs every process and the others do not know of this one's error."""
        why = (f"the error struck during the update of iteration {step + 1}" if not intact else
               "under torchrun a save needs every process" if self.ctx.enabled else None)
        if why is None:
            try:
                path = self.save(step, ["latest"])
                self.message(f"error at iteration {step}: {first_line(error)}; saved {path} "
                             "(continue with --resume once the cause is fixed)")
                return
            except Exception as e2:
                why = f"saving failed too ({first_line(e2)})"
        self.message(f"error at iteration {step}: {first_line(error)}; not saved ({why}); "
                     f"{self.last_good()}")


def finite_weights(nets: Networks) -> bool:
    params = list(nets.g.parameters()) + list(nets.d.parameters())
    return bool(torch.stack([p.detach().isfinite().all() for p in params]).all())
