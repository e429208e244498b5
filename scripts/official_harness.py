"""What the scripts that run the official OASIS code beside oasisgan share (compare_official*.py).

The official code (boschresearch/OASIS) is imported at run time from a checkout, never copied:
its `models` package, and `utils.utils` for `update_EMA`. torchvision (its VGG loss) and
matplotlib (its loss plots), which those modules import for parts not run here, are replaced
by empty stub modules. The official networks are fixed where ours are configurable: the
generator always has 6 SPADE blocks with 128 hidden SPADE channels, the discriminator the
widths 128..512 of our `channels_D=64`; `check_official_shape` says so for other configs.
"""
from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path
from typing import Any, Callable

import torch


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |a|: the relative difference of two tensors."""
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


def import_official(repo: str) -> types.SimpleNamespace:
    """The official modules from the checkout at `repo`: generator, discriminator, losses,
    models (OASIS_model, preprocess_input, generate_labelmix) and utils (update_EMA)."""
    root = Path(repo).resolve()
    if not (root / "models" / "models.py").is_file():
        raise SystemExit(f"{repo}: not a checkout of boschresearch/OASIS (no models/models.py)")
    sys.path.insert(0, str(root))
    for stub in ("torchvision", "matplotlib", "matplotlib.pyplot"):
        sys.modules.setdefault(stub, types.ModuleType(stub))
    sys.modules["matplotlib"].pyplot = sys.modules["matplotlib.pyplot"]
    import models.discriminator as discriminator
    import models.generator as generator
    import models.losses as losses
    import models.models as official_models
    import utils.utils as official_utils

    return types.SimpleNamespace(generator=generator, discriminator=discriminator, losses=losses,
                                 models=official_models, utils=official_utils)


def check_official_shape(cfg) -> None:
    """Exit with a message when `cfg` asks for networks the official code cannot build."""
    wrong = {k: v for k, v in (("num_res_blocks", 6), ("channels_D", 64), ("spade_hidden", 128),
                               ("spade_ks", 3), ("spectral_norm", True)) if getattr(cfg, k) != v}
    if cfg.dontcare_label not in (0, None):
        wrong["dontcare_label"] = "0 or null"
    if wrong:
        raise SystemExit("the official networks are fixed: " + ", ".join(f"{k} must be {v}" for k, v in wrong.items()))


def official_opt(cfg, batch_size: int, **extra: Any) -> argparse.Namespace:
    """The official options (`config.py`'s names) for our config `cfg`."""
    dataset_mode = {"ade20k": "ade20k", "cityscapes": "cityscapes", "coco-stuff": "coco"}.get(cfg.dataset, "ade20k")
    opt = argparse.Namespace(
        phase="train", dataset_mode=dataset_mode, semantic_nc=cfg.semantic_nc, label_nc=cfg.semantic_nc - 1,
        crop_size=cfg.crop_size, aspect_ratio=cfg.aspect_ratio, channels_G=cfg.channels_G, channels_D=64,
        num_res_blocks=cfg.num_res_blocks, z_dim=cfg.z_dim, no_3dnoise=not cfg.noise_3d, spade_ks=cfg.spade_ks,
        param_free_norm=cfg.param_free_norm, no_spectral_norm=not cfg.spectral_norm, gpu_ids="-1",
        contain_dontcare_label=cfg.dontcare_label == 0, no_balancing_inloss=not cfg.class_balancing,
        no_labelmix=not cfg.labelmix, lambda_labelmix=cfg.lambda_labelmix, EMA_decay=cfg.ema_decay,
        no_EMA=not cfg.ema, batch_size=batch_size, lr_g=cfg.lr_g, lr_d=cfg.lr_d, beta1=cfg.beta1,
        beta2=cfg.beta2, add_vgg_loss=False, lambda_vgg=cfg.lambda_vgg, continue_train=False)
    for k, v in extra.items():
        setattr(opt, k, v)
    return opt


def with_z(fn: Callable, z: torch.Tensor):
    """Run `fn` with every `torch.randn` returning `z` (the official generator draws its own noise)."""
    orig = torch.randn
    torch.randn = lambda *a, **k: z.clone()
    try:
        return fn()
    finally:
        torch.randn = orig
