"""Shared helpers of the painter tests (imported by test_app_api.py and test_app_browser.py).

The test model is the `toy` preset with random weights, initialised with a larger gain than the
official 0.02 and with BatchNorm statistics collected, so that its images have visible structure
and respond to the noise (a freshly initialised official generator outputs a flat grey).
"""
from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional, Tuple

import numpy as np
import torch

CLASS_NAMES = ["unlabeled", "sky", "tree", "grass", "water", "mountain", "road", "building", "sand", "rock"]
PALETTE = [[0, 0, 0], [120, 170, 240], [30, 120, 40], [110, 200, 80], [40, 80, 200], [130, 100, 80],
           [90, 90, 90], [200, 80, 70], [230, 210, 140], [150, 150, 140]]


def make_test_checkpoint(path: Path, seed: int = 0) -> Path:
    import oasisgan
    from oasisgan.loading.checkpoint import save_checkpoint
    from oasisgan.labels import one_hot
    from oasisgan.nn import Generator
    from oasisgan.nn.layers import init_weights, settle_spectral_norms

    torch.manual_seed(seed)
    cfg = oasisgan.preset("toy", semantic_nc=len(CLASS_NAMES), class_names=CLASS_NAMES, palette=PALETTE)
    gen = Generator.from_config(cfg, init=False)
    init_weights(gen, gain=1.0)
    settle_spectral_norms(gen)
    gen.train()
    with torch.no_grad():
        for _ in range(8):
            lab = torch.randint(0, cfg.semantic_nc, (4, 8, 8))
            lab = lab.repeat_interleave(cfg.height // 8, 1).repeat_interleave(cfg.width // 8, 2)
            gen(one_hot(lab, cfg.semantic_nc), torch.randn(4, cfg.z_dim))
    gen.eval()
    save_checkpoint(path, config=cfg, ema=gen, generator=gen)
    return path


def map_payload(arr: np.ndarray, wide: bool = False) -> dict:
    dtype = np.dtype("<u2") if wide else np.uint8
    return {"encoding": "u16" if wide else "u8", "data": base64.b64encode(arr.astype(dtype).tobytes()).decode()}


def decode_map(obj: dict, shape: Tuple[int, int]) -> np.ndarray:
    raw = base64.b64decode(obj["data"])
    dtype = np.dtype("<u2") if obj["encoding"] == "u16" else np.uint8
    return np.frombuffer(raw, dtype).astype(np.int64).reshape(shape)


def decode_image(data_url: str) -> np.ndarray:
    from PIL import Image

    raw = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")).astype(np.int64)


def png_bytes(arr: np.ndarray, mode: Optional[str] = None, palette=None) -> bytes:
    from PIL import Image

    img = Image.fromarray(arr, mode) if mode else Image.fromarray(arr)
    if palette is not None:
        img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def request(url: str, body: Any = None, raw: Optional[bytes] = None, method: Optional[str] = None,
            headers: Optional[dict] = None, timeout: float = 30) -> Tuple[int, Any, dict]:
    """(status, decoded JSON or bytes, headers) of one request; HTTP errors are returned, not raised."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            status, payload, hdrs = res.status, res.read(), dict(res.headers)
    except urllib.error.HTTPError as e:
        status, payload, hdrs = e.code, e.read(), dict(e.headers)
    if hdrs.get("Content-Type", "").startswith("application/json"):
        payload = json.loads(payload)
    return status, payload, hdrs
