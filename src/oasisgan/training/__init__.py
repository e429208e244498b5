"""Training: the loop, EMA, checkpoints, distributed helpers and logging."""
