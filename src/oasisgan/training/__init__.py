"""Training: the loop, the OASIS step, EMA, resume state, distributed helpers, logging.

`train(cfg, data_root, out_dir, resume=False, ...)` is the entry point (`oasis train`).
"""
from .ema import recollect_bn_stats, update_ema

__all__ = ["train", "Trainer", "TrainResult", "TrainingDiverged", "update_ema", "recollect_bn_stats"]


def __getattr__(name):  # keep `import oasisgan.training.ema` light
    if name == "train":
        from .api import train

        return train
    if name in ("Trainer", "TrainResult", "TrainingDiverged"):
        from . import loop

        return getattr(loop, name)
    raise AttributeError(name)
