"""`oasisgan.load`: a trained OASIS model ready for synthesis."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from ..config import OASISConfig
from ..editing import EditingMixin
from ..nn import Discriminator, Generator
from ..synthesis import SynthesisMixin
from .checkpoint import CheckpointError, check_finite, load_weights, read_checkpoint
from .hub import DISCRIMINATOR_NAME, WEIGHTS_NAME, read_pretrained_dir, save_pretrained


class OASISModel(SynthesisMixin, EditingMixin):
    """A loaded model: `.config`, `.generator` (EMA weights, eval mode), `.discriminator` or None.

    The synthesis methods (`synthesize`, noise helpers) live in `oasisgan.synthesis`, the photo
    editing ones (`invert`, `edit`, `transfer`) in `oasisgan.editing`; both are bound here so that
    `oasisgan.load(path).synthesize(label)` works.
    """

    def __init__(self, config: OASISConfig, generator: Generator,
                 discriminator: Optional[Discriminator] = None, path: Optional[Path] = None,
                 meta: Optional[dict] = None):
        self.config, self.generator, self.discriminator, self.path = config, generator, discriminator, path
        self.meta = dict(meta or {})  # the checkpoint's meta (e.g. "iteration"), for model cards

    def save_pretrained(self, out_dir: Union[str, Path], discriminator: bool = True, card=None,
                        force: bool = False) -> Path:
        """config.json + model.safetensors (+ discriminator.safetensors) + README.md: see oasisgan.hub
        (an existing folder must be empty unless `force`; then only those files are replaced)."""
        return save_pretrained(self, out_dir, discriminator=discriminator, card=card, force=force)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def to(self, device) -> "OASISModel":
        self.generator.to(device)
        if self.discriminator is not None:
            self.discriminator.to(device)
        return self

    def __repr__(self) -> str:
        c = self.config
        return (f"OASISModel(preset={c.preset!r}, classes={c.semantic_nc}, "
                f"resolution={c.height}x{c.width}, device={self.device})")


def load(path: Union[str, Path], device: Union[str, torch.device] = "cpu",
         discriminator: bool = True, allow_nonfinite: Optional[bool] = None) -> OASISModel:
    """Load an oasisgan checkpoint (ours: see `oasisgan.loading.checkpoint`) onto `device`.

    The generator is the EMA generator when the checkpoint has one, in eval mode. Weights with
    NaN/Inf are refused unless `allow_nonfinite` (default: $OASISGAN_ALLOW_NONFINITE).
    A `save_pretrained` folder (config.json + model.safetensors) loads too.
    """
    path = Path(path)
    if path.is_dir():
        config, state, dstate = read_pretrained_dir(path, discriminator, allow_nonfinite)
        where, dwhere, meta = path / WEIGHTS_NAME, path / DISCRIMINATOR_NAME, None
    else:
        ckpt = read_checkpoint(path)
        try:
            config = OASISConfig.from_dict(ckpt["config"], strict=False)
        except Exception as e:
            raise CheckpointError(f"{path}: invalid config: {e}") from None
        has_ema = ckpt.get("ema") is not None
        state = ckpt["ema"] if has_ema else ckpt["generator"]
        check_finite(state, path, "EMA generator" if has_ema else "generator", allow_nonfinite)
        dstate = ckpt.get("discriminator") if discriminator else None
        if dstate is not None:
            check_finite(dstate, path, "discriminator", allow_nonfinite)
        where, dwhere, meta = path, path, ckpt.get("meta")
    gen = Generator.from_config(config, init=False)
    load_weights(gen, state, where, "generator")
    gen.eval().requires_grad_(False)
    disc = None
    if dstate is not None:
        disc = Discriminator.from_config(config, init=False)
        load_weights(disc, dstate, dwhere, "discriminator")
        disc.eval().requires_grad_(False)
    return OASISModel(config, gen, disc, path, meta=meta).to(device)
