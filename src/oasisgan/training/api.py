"""`train()`: the entry point of `oasis train` and of scripts. It builds the evaluation during
training (`oasisgan.metrics.TrainingEvaluator`) and hands it to the `Trainer`, so the loop itself
imports no metric."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..config import OASISConfig
from ..metrics.evaluate import TrainingEvaluator
from .loop import Trainer, TrainResult


def train(cfg: OASISConfig, data_root: Optional[Union[str, Path]], out_dir: Union[str, Path],
          resume: bool = False, device: Optional[str] = None, eval_every: Optional[int] = None,
          dataset=None, progress: bool = True, tensorboard: bool = True,
          check_data: bool = True) -> TrainResult:
    """Train OASIS on `data_root` into the run directory `out_dir` (see `oasisgan.training.loop`).

    `resume`: continue from ``out_dir/checkpoints/latest.ckpt`` (a fresh start when there is
    none yet). `device`: cpu, cuda, cuda:K (default: cuda when available). Under torchrun each
    process joins the process group and trains its share. `eval_every`: evaluate every N
    iterations (overrides ``cfg.freq_fid``; an explicit value fails at start-up when the metrics
    cannot run). `dataset`: an already built training dataset (then `data_root` is only used for
    evaluation).
    """
    trainer = Trainer(cfg, data_root, out_dir, resume=resume, device=device, eval_every=eval_every,
                      dataset=dataset, progress=progress, tensorboard=tensorboard, check_data=check_data,
                      evaluator=TrainingEvaluator())
    return trainer.run()
