"""The painter's photo mode: open a photo with its label map, invert it (a background job the
page polls), then paint on its label map and see the edited photo (`oasisgan.editing`).

Inversions are the one piece of server state: the page keeps a photo's id, the server keeps the
last `MAX_PHOTOS` inversions (their noise is too large to send back and forth at 256x256). A
restarted server forgets them; the page then says so and the photo is opened again.

In photo mode a synthesis request carries `photo: {id, paste_back, transfers}` beside the label
and seed map. The noise is, in order: the photo's inverted noise where its class is unchanged,
the photo's mean noise of the class where the class changed (fresh noise of `seeds[0]` for
classes the photo lacks: `editing.edit_noise`); for each transfer `{photo, class}` the mean noise
of that class in the other photo, on every pixel of the class; the seed of every pixel whose
seed index is not 0 (local resampling, as without a photo).
"""
from __future__ import annotations

import base64
import secrets
import threading
import time
import warnings
from collections import OrderedDict
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from ..data.photos import read_photo
from ..data.transforms import BICUBIC
from ..editing import Inversion, edit_noise, feather_mask, image_tensor, invert
from ..errors import DataError
from ..labels import to_uint8_image
from ..limits import MAX_INVERSION_STEPS
from .protocol import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, RequestError, b64decode, png_bytes, require

MAX_PHOTOS = 16
MAX_JOBS = 32
MAX_STEPS = MAX_INVERSION_STEPS


def data_url(img: np.ndarray) -> str:
    from PIL import Image

    return "data:image/png;base64," + base64.b64encode(png_bytes(Image.fromarray(img, "RGB"))).decode()


class Photos:
    """Inversion jobs and the inverted photos of one painter."""

    def __init__(self, painter, steps: int = 200):
        self.painter = painter
        self.steps = steps
        self.photos: "OrderedDict[str, Inversion]" = OrderedDict()
        self.jobs: "OrderedDict[str, Dict[str, Any]]" = OrderedDict()
        self._lock = threading.Lock()

    # --- a photo file -------------------------------------------------------------------------------
    def read_photo(self, data: bytes, name: str):
        """uint8 (H, W, 3) at the model's size and notes; the original (h, w)."""
        p = self.painter
        try:  # the one photo reader; decoded within the server's budget of pixels at once
            rgb = read_photo(data, name, max_pixels=MAX_UPLOAD_PIXELS, hold=p.decoding.take)
        except DataError as e:
            raise RequestError(str(e)) from None
        w, h = rgb.size
        notes = []
        if (h, w) != (p.height, p.width):
            rgb = rgb.resize((p.width, p.height), BICUBIC)
            notes.append(f"resized from {w}x{h} to {p.width}x{p.height}")
        return np.asarray(rgb), notes, (h, w)

    # --- jobs ---------------------------------------------------------------------------------------
    def start(self, body: Any) -> Dict[str, Any]:
        """Check the upload, then invert it on a background thread: {job, steps}."""
        p = self.painter
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        name = body.get("name") if isinstance(body.get("name"), str) else "photo"
        name = "".join(ch for ch in name[:80] if ch.isprintable()) or "photo"
        label_name = body.get("label_name") if isinstance(body.get("label_name"), str) else "label"
        label_name = "".join(ch for ch in label_name[:80] if ch.isprintable()) or "label"
        photo_bytes = b64decode(require(body, "image", str, "a base64 image file"), "image")
        if len(photo_bytes) > MAX_UPLOAD_BYTES:
            raise RequestError(f"{name} is {len(photo_bytes) / 2**20:.1f} MiB; the limit is "
                               f"{MAX_UPLOAD_BYTES // 2**20} MiB", 413)
        label_bytes = b64decode(require(body, "label", str, "a base64 PNG"), "label")
        steps = body.get("steps", self.steps)
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise RequestError(f"'steps' must be an integer in 1..{MAX_STEPS}")
        rgb, notes, size = self.read_photo(photo_bytes, name)
        label, label_notes, label_size = p.upload_to_ids(label_bytes, label_name)
        if label_size != size:
            raise RequestError(f"{name} is {size[1]}x{size[0]} but its label map {label_name} is "
                               f"{label_size[1]}x{label_size[0]}: give the photo's own label map")
        with self._lock:
            if any(j["state"] == "running" for j in self.jobs.values()):
                raise RequestError("an inversion is already running: wait for it to finish", 409)
            job_id = secrets.token_hex(8)
            job = {"state": "running", "step": 0, "steps": steps, "loss": None, "started": time.perf_counter(),
                   "notes": notes + label_notes, "name": name}
            self.jobs[job_id] = job
            while len(self.jobs) > MAX_JOBS:
                self.jobs.popitem(last=False)
        threading.Thread(target=self._run, args=(job, rgb, label, steps), daemon=True,
                         name="oasis-invert").start()
        return {"job": job_id, "steps": steps}

    def _run(self, job: Dict[str, Any], rgb: np.ndarray, label: np.ndarray, steps: int) -> None:
        def progress(stage, step, total, loss):
            job.update(step=step, loss=round(loss, 5), stage=stage)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # notes travel in the result
                inv = invert(self.painter.model, image_tensor(rgb), label, steps=steps, progress=False,
                             callback=progress)
            photo_id = secrets.token_hex(8)
            with self._lock:
                self.photos[photo_id] = inv
                while len(self.photos) > MAX_PHOTOS:
                    self.photos.popitem(last=False)

            job.update(state="done", photo={
                "id": photo_id, "label": self.painter.encode_map(label), "psnr": round(inv.psnr, 2),
                "lpips": inv.lpips, "seconds": round(inv.seconds, 2), "notes": job["notes"] + inv.notes,
                "image": data_url(rgb), "reconstruction": data_url(to_uint8_image(inv.reconstruction[0])),
                "classes_present": [int(c) for c in np.unique(label)]})
        except Exception as e:  # reported to the page; the server goes on
            job.update(state="error", error=f"inversion failed: {type(e).__name__}: {str(e)[:200]}")

    def status(self, job_id: str) -> Dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            raise RequestError("no such inversion job (the server may have restarted)", 404)
        out = {k: job[k] for k in ("state", "step", "steps", "loss") if k in job}
        out["seconds"] = round(time.perf_counter() - job["started"], 2)
        if job["state"] == "done":
            out["photo"] = job["photo"]
        elif job["state"] == "error":
            out["error"] = job["error"]
        return out

    # --- synthesis in photo mode ----------------------------------------------------------------
    def get(self, photo_id: Any) -> Inversion:
        if not isinstance(photo_id, str) or photo_id not in self.photos:
            raise RequestError("this photo is no longer on the server (it keeps the last "
                               f"{MAX_PHOTOS}, and forgets them on restart): open it again", 404)
        return self.photos[photo_id]

    def parse(self, spec: Any) -> Dict[str, Any]:
        """The `photo` field of a synthesis request -> {inv, paste_back, transfers: [(inv, class)]}."""
        if not isinstance(spec, dict):
            raise RequestError("'photo' must be an object {id, paste_back, transfers}")
        inv = self.get(spec.get("id"))
        transfers = spec.get("transfers") or []
        if not isinstance(transfers, list) or len(transfers) > self.painter.num_classes:
            raise RequestError("'photo.transfers' must be a list of {photo, class}")
        out = []
        for t in transfers:
            if not isinstance(t, dict):
                raise RequestError("'photo.transfers' must be a list of {photo, class}")
            src, cls = self.get(t.get("photo")), t.get("class")
            if isinstance(cls, bool) or not isinstance(cls, int) or not 0 <= cls < self.painter.num_classes:
                raise RequestError(f"'photo.transfers[].class' must be a class id in 0..{self.painter.num_classes - 1}")
            if not bool(src.present[0, cls]):
                raise RequestError(f"the source photo has no pixels of class {self.painter.names[cls]!r}")
            out.append((src, cls))
        return {"inv": inv, "paste_back": bool(spec.get("paste_back", False)), "transfers": out}

    def noise(self, label: np.ndarray, seeds: Sequence[int], index: Optional[np.ndarray],
              photo: Dict[str, Any]) -> torch.Tensor:
        """(1, z_dim, H, W): the edited photo's noise (see the module's docstring)."""
        inv: Inversion = photo["inv"]
        lab = torch.from_numpy(label)
        z = edit_noise(inv, lab, "class", seed=seeds[0])
        for src, cls in photo["transfers"]:
            z = torch.where((lab == cls)[None, None], src.class_z[0, cls][None, :, None, None], z)
        if index is not None and len(seeds) > 1:
            local = torch.from_numpy(index) > 0
            z = torch.where(local[None, None], self.painter.noise_map(seeds, index), z)
        return z

    def composite(self, out: torch.Tensor, label: np.ndarray, z: torch.Tensor, photo: Dict[str, Any]) -> torch.Tensor:
        """The photo's own pixels outside what changed (label or noise), feathered."""
        inv: Inversion = photo["inv"]
        changed = (torch.from_numpy(label)[None] != inv.label) | (z != inv.z).any(1)
        soft = feather_mask(changed, 3.0, 2)
        return inv.image * (1 - soft) + out * soft
