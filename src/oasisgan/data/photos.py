"""Reading photos: one reader for datasets, inversion, evaluation and the painter's uploads.

Pillow's `convert("RGB")` clips 16-bit and float images to 255 (a 16-bit PNG becomes all
white), so those are scaled here: 16-bit (I;16) by 1/257; 32-bit (I) the same when its values
exceed 255, else read as 8-bit; float (F) as 0..1 when it stays within 1, else as 0..255. Every
other mode (1, L, LA, P, RGB, RGBA, CMYK, YCbCr ...) is Pillow's own conversion; alpha is dropped.
Label maps have their own reader (`labelmaps.open_label`): they hold ids, not intensities.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Callable, ContextManager, Optional, Union

import numpy as np
from PIL import Image

from ..errors import DataError


def photo_to_rgb(img: Image.Image) -> Image.Image:
    """A decoded PIL image of any mode -> RGB, with 16-bit and float values scaled to 0..255."""
    mode = img.mode
    if not (mode.startswith("I") or mode == "F"):
        return img.convert("RGB")
    a = np.asarray(img, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError("the image holds NaN or infinite values")
    top = float(a.max()) if a.size else 0.0
    if mode == "F":
        scale = 255.0 if top <= 1.0 else 1.0 if top <= 255.0 else 255.0 / top
    elif mode.startswith("I;16"):
        scale = 1 / 257
    else:  # 32-bit: 8-bit values in a wide container, 16-bit ones, or anything up to its maximum
        scale = 1.0 if top <= 255 else 1 / 257 if top <= 65535 else 255.0 / top
    grey = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB")


def read_photo(source: Union[str, Path, bytes], name: Optional[str] = None, max_pixels: Optional[int] = None,
               hold: Optional[Callable[[int], ContextManager]] = None) -> Image.Image:
    """A photo file (path or bytes) -> RGB PIL image; DataError naming `name` (default: the path).

    `max_pixels`: refused from the header, before decoding (a decompression bomb); `hold(pixels)`:
    a context held while decoding (the painter's budget of pixels decoded at once)."""
    name = name or str(source if not isinstance(source, bytes) else "image")
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise DataError(f"{name}: image file not found")

    def unreadable(e: Exception) -> DataError:
        return DataError(f"{name}: not an image file Pillow can read ({type(e).__name__})")

    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Exception as e:  # Pillow raises many types on non-images
        raise unreadable(e) from None
    with img:
        w, h = img.size
        if max_pixels is not None and (w * h > max_pixels or w < 1 or h < 1):
            raise DataError(f"{name}: the image is {w}x{h}; that is too large (over {max_pixels} pixels)")
        with (hold(w * h) if hold else contextlib.nullcontext()):  # the caller's errors pass through
            try:
                img.load()
            except Exception as e:
                raise unreadable(e) from None
            try:
                return photo_to_rgb(img)
            except ValueError as e:
                raise DataError(f"{name}: {e}") from None
