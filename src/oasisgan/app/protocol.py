"""What the painter's page sends and gets, below the engine: `RequestError` (its message is shown
on the page), validators of decoded JSON fields, the upload limits, PNG encoding and the budget of
pixels decoded at once. Shared by the engine (`app.core`) and the photo mode (`app.photos`)."""
from __future__ import annotations

import base64
import binascii
import contextlib
import io
import threading
from typing import Any, Optional

from ..errors import OASISError
from ..limits import DECODE_BUDGET_PIXELS, DECODE_WAIT_S, MAX_DECODE_PIXELS

MAX_UPLOAD_BYTES = 16 * 2**20  # an uploaded label file
MAX_UPLOAD_PIXELS = MAX_DECODE_PIXELS  # decompression-bomb guard, per image


class RequestError(OASISError, ValueError):
    """Bad input from the page; `status` is the HTTP status, the message is shown to the user."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def require(obj: Any, key: str, kind, what: Optional[str] = None):
    if not isinstance(obj, dict):
        raise RequestError("the request body must be a JSON object")
    if key not in obj:
        raise RequestError(f"missing field '{key}'")
    value = obj[key]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(f"field '{key}' must be an integer{what or ''}")
    elif not isinstance(value, kind):
        name = getattr(kind, "__name__", str(kind))
        raise RequestError(f"field '{key}' must be {what or 'a ' + name}")
    return value


def b64decode(data: Any, field: str) -> bytes:
    if not isinstance(data, str):
        raise RequestError(f"'{field}' must be a base64 string")
    if data.startswith("data:"):
        data = data.split(",", 1)[-1]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"'{field}' is not valid base64") from None


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class PixelBudget:
    """Pixels decoded at once over all requests (each costs about 10 bytes while decoded): a
    large upload waits until the others are done, and gets 503 after `wait_s`. Without it, 8
    uploads of an 8000x8000 PNG at once took the server from 0.5 to 5.6 GB."""

    def __init__(self, pixels: int = DECODE_BUDGET_PIXELS, wait_s: float = DECODE_WAIT_S):
        self.pixels, self.wait_s, self.used = pixels, wait_s, 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def take(self, n: int):
        n = min(int(n), self.pixels)  # one image never exceeds the budget (MAX_UPLOAD_PIXELS caps it)
        with self._cond:
            if not self._cond.wait_for(lambda: self.used + n <= self.pixels, timeout=self.wait_s):
                raise RequestError("the server is busy decoding other images: try again in a moment", 503)
            self.used += n
        try:
            yield
        finally:
            with self._cond:
                self.used -= n
                self._cond.notify_all()
