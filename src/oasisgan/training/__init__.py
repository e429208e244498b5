"""Training: the loop, the OASIS step, EMA, resume state, distributed helpers, logging.

`train(cfg, data_root, out_dir, resume=False, ...)` is the entry point (`oasis train`).
"""
from .api import train
from .checkpoints import TrainingDiverged
from .ema import recollect_bn_stats, update_ema
from .loop import Trainer, TrainResult

__all__ = ["train", "Trainer", "TrainResult", "TrainingDiverged", "update_ema", "recollect_bn_stats"]
