"""What a training run reports (rank 0 only): a progress bar, TensorBoard, a JSONL log, grids.

- Progress bar (tqdm): iteration / total, it/s, ETA, the current G and D losses.
- TensorBoard (``RUN/tb``): scalars ``loss/*`` (every term), ``lr/G``, ``lr/D``,
  ``speed/it_per_s``, ``speed/img_per_s``, ``eval/*``, under ``amp: fp16`` ``amp/skipped_steps_{G,D}``
  and ``amp/scale_{G,D}``; image grids ``samples``.
- ``RUN/log.jsonl``: one JSON object per logging step with the same scalars, for scripts.
- ``RUN/samples/iter_<N>.png``: rows of (label | real | G | EMA G) every ``freq_print`` iterations.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from PIL import Image

from ..labels import colorize, to_uint8_image


def make_grid(columns: List[np.ndarray], gap: int = 2) -> np.ndarray:
    """Columns of uint8 (B, H, W, 3) images -> one uint8 (H', W', 3) grid, one row per sample."""
    b, h, w, _ = columns[0].shape
    ncol = len(columns)
    grid = np.full((b * h + (b - 1) * gap, ncol * w + (ncol - 1) * gap, 3), 255, dtype=np.uint8)
    for i in range(b):
        for j, col in enumerate(columns):
            grid[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = col[i]
    return grid


def sample_columns(label: torch.Tensor, real: torch.Tensor, fakes: List[torch.Tensor], cfg) -> List[np.ndarray]:
    cols = [colorize(label, cfg.palette, cfg.semantic_nc), to_uint8_image(real)]
    cols += [to_uint8_image(f) for f in fakes]
    return cols


class RunLogger:
    """Collects loss values, averages them over `log_every` iterations and writes them out."""

    def __init__(self, out_dir: Path, total: int, start: int, batch_size: int, enabled: bool = True,
                 progress: bool = True, tensorboard: bool = True):
        self.out_dir, self.total, self.batch_size, self.enabled = Path(out_dir), total, batch_size, enabled
        self.sums: Dict[str, float] = {}
        self.count = 0
        self.last: Dict[str, float] = {}
        self.t_window, self.it_window = time.perf_counter(), start
        self.bar = None
        self.tb = None
        self.jsonl = None
        if not enabled:
            return
        (self.out_dir / "samples").mkdir(parents=True, exist_ok=True)
        self.jsonl = open(self.out_dir / "log.jsonl", "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out_dir / "tb"), purge_step=start + 1 if start else None)
            except Exception as e:  # TensorBoard is optional at run time
                print(f"note: TensorBoard logging off ({e.__class__.__name__}: {e})", file=sys.stderr)
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, unit="it", dynamic_ncols=True, smoothing=0.05,
                            desc="train", file=sys.stderr)

    # -----------------------------------------------------------------------------------------
    def add(self, losses: Dict[str, float]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        self.last = losses

    def tick(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if self.last:
                self.bar.set_postfix({"G": f"{self.last.get('G', math.nan):.3f}",
                                      "D": f"{self.last.get('D', math.nan):.3f}"}, refresh=False)

    def flush(self, step: int, epoch: int, lrs: Dict[str, float],
              extra: Optional[Dict[str, float]] = None) -> Dict[str, float]:
        """Write the averaged scalars of the window ending at `step` (and `extra` as they are)."""
        now = time.perf_counter()
        its = (step - self.it_window) / max(now - self.t_window, 1e-9)
        self.t_window, self.it_window = now, step
        scalars = {f"loss/{k}": v / max(self.count, 1) for k, v in self.sums.items()}
        scalars.update({f"lr/{k}": v for k, v in lrs.items()})
        scalars.update({"speed/it_per_s": its, "speed/img_per_s": its * self.batch_size})
        scalars.update(extra or {})
        self.sums, self.count = {}, 0
        self.scalars(step, scalars, epoch=epoch)
        return scalars

    def scalars(self, step: int, values: Dict[str, float], **extra) -> None:
        if not self.enabled:
            return
        if self.tb is not None:
            for k, v in values.items():
                if v is not None and math.isfinite(v):
                    self.tb.add_scalar(k, v, step)
        rec = {"iter": step, **extra, "time": round(time.time(), 3), **values}
        self.jsonl.write(json.dumps(rec) + "\n")

    def grid(self, step: int, grid: np.ndarray) -> Path:
        path = self.out_dir / "samples" / f"iter_{step:07d}.png"
        Image.fromarray(grid).save(path)
        Image.fromarray(grid).save(self.out_dir / "samples" / "latest.png")
        if self.tb is not None:
            self.tb.add_image("samples (label | real | G | EMA G)", grid, step, dataformats="HWC")
        return path

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
            self.tb = None
        if self.jsonl is not None:
            self.jsonl.close()
            self.jsonl = None
