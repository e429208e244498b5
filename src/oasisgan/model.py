"""`oasisgan.load`: a trained OASIS model ready for synthesis."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from .checkpoint import CheckpointError, check_finite, read_checkpoint
from .errors import first_line
from .config import OASISConfig
from .nn import Discriminator, Generator
from .editing import EditingMixin
from .synthesis import SynthesisMixin


def _load_into(module: torch.nn.Module, state, path, what: str) -> None:
    """Load weights, refusing any whose kind of number is not the network's: load_state_dict
    would silently cast int64 weights to float (a model that draws black images)."""
    own = module.state_dict()
    for name, t in state.items():
        ref = own.get(name)
        if torch.is_tensor(t) and torch.is_tensor(ref) and t.is_floating_point() != ref.is_floating_point():
            raise CheckpointError(f"{path}: the {what} weight '{name}' is stored as {str(t.dtype)[6:]}, not "
                                  f"{'floating point' if ref.is_floating_point() else str(ref.dtype)[6:]}: "
                                  "not a model oasisgan wrote, or a broken conversion")
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: the {what} weights do not fit the config: "
                              f"{first_line(e)} ...") from None


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
        from .hub import save_pretrained

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
    """Load an oasisgan checkpoint (ours: see `oasisgan.checkpoint`) onto `device`.

    The generator is the EMA generator when the checkpoint has one, in eval mode. Weights with
    NaN/Inf are refused unless `allow_nonfinite` (default: $OASISGAN_ALLOW_NONFINITE).
    A `save_pretrained` folder (config.json + model.safetensors) loads too.
    """
    path = Path(path)
    if path.is_dir():
        from .hub import load_pretrained_dir

        return load_pretrained_dir(path, device, discriminator, allow_nonfinite)
    ckpt = read_checkpoint(path)
    try:
        config = OASISConfig.from_dict(ckpt["config"], strict=False)
    except Exception as e:
        raise CheckpointError(f"{path}: invalid config: {e}") from None
    gen = Generator.from_config(config, init=False)
    state = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["generator"]
    check_finite(state, path, "EMA generator" if ckpt.get("ema") is not None else "generator", allow_nonfinite)
    _load_into(gen, state, path, "generator")
    gen.eval().requires_grad_(False)
    disc = None
    if discriminator and ckpt.get("discriminator") is not None:
        check_finite(ckpt["discriminator"], path, "discriminator", allow_nonfinite)
        disc = Discriminator.from_config(config, init=False)
        _load_into(disc, ckpt["discriminator"], path, "discriminator")
        disc.eval().requires_grad_(False)
    return OASISModel(config, gen, disc, path, meta=ckpt.get("meta")).to(device)
