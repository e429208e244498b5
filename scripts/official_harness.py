"""What the scripts that run the official OASIS code beside oasisgan share (compare_official*.py).

The official code (boschresearch/OASIS) is imported at run time from a checkout, never copied:
its `models` package, and `utils.utils` for `update_EMA`. torchvision (its VGG loss) and
matplotlib (its loss plots), which those modules import for parts not run here, are replaced
by empty stub modules. The official networks are fixed where ours are configurable: the
generator's SPADE has 128 hidden channels and its width list is 6 blocks long, the
discriminator has the widths 3,128,128,256,256,512,512 (and 64 before its last conv) whatever
`channels_D` says. `check_official_shape` says so for other configs, or `official_widths`
builds the official classes at our config's widths (see there).
"""
from __future__ import annotations

import argparse
import contextlib
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
    import models.norms as norms
    import utils.utils as official_utils

    return types.SimpleNamespace(generator=generator, discriminator=discriminator, losses=losses,
                                 models=official_models, norms=norms, utils=official_utils)


def check_official_shape(cfg) -> None:
    """Exit with a message when `cfg` asks for networks the official code cannot build."""
    wrong = {k: v for k, v in (("num_res_blocks", 6), ("channels_D", 64), ("spade_hidden", 128),
                               ("spade_ks", 3), ("spectral_norm", True)) if getattr(cfg, k) != v}
    if cfg.dontcare_label not in (0, None):
        wrong["dontcare_label"] = "0 or null"
    if wrong:
        raise SystemExit("the official networks are fixed: " + ", ".join(f"{k} must be {v}" for k, v in wrong.items()))


@contextlib.contextmanager
def official_widths(off, cfg):
    """While open, the official `OASIS_model` builds its G and D at `cfg`'s depth and widths.

    The official classes and their forward passes run unchanged; only the numbers they hard-code
    are mapped at construction: the width list each network assigns to `self.channels` is
    replaced by ours (`generator_widths(channels_G, num_res_blocks)`: the official list's tail;
    `discriminator_widths(channels_D, num_res_blocks)`), and G's first conv is rebuilt at the
    list's first width where that is not 16 channels_G; where `channels_D` is not 64, D's last up
    block and 1x1 conv are rebuilt (with the official `residual_block_D` and `nn.Conv2d`) at
    width `channels_D` instead of the literal 64; where `spade_hidden` is not 128, each SPADE's
    three convs are rebuilt at that width. The result has our modules' names and shapes
    (tests/test_official_quality_run.py: the same parameter count, our weights load strictly and
    give our outputs)."""
    from oasisgan.nn.discriminator import discriminator_widths
    from oasisgan.nn.generator import generator_widths

    g_widths = generator_widths(cfg.channels_G, cfg.num_res_blocks)
    d_widths = discriminator_widths(cfg.channels_D, cfg.num_res_blocks)
    base_g, base_d = off.generator.OASIS_Generator, off.discriminator.OASIS_Discriminator
    nn = torch.nn

    def spade_at(spade, hidden: int) -> None:
        shared = spade.mlp_shared[0]
        ks, pad = shared.kernel_size, shared.padding
        spade.mlp_shared = nn.Sequential(nn.Conv2d(shared.in_channels, hidden, ks, padding=pad), nn.ReLU())
        spade.mlp_gamma = nn.Conv2d(hidden, spade.mlp_gamma.out_channels, ks, padding=pad)
        spade.mlp_beta = nn.Conv2d(hidden, spade.mlp_beta.out_channels, ks, padding=pad)

    class OASIS_Generator(base_g):
        def __setattr__(self, name, value):
            super().__setattr__(name, list(g_widths) if name == "channels" else value)

        def __init__(self, opt):
            super().__init__(opt)
            if g_widths[0] != 16 * cfg.channels_G:  # fewer than 4 blocks: the list's tail starts lower
                self.fc = nn.Conv2d(self.fc.in_channels, g_widths[0], 3, padding=1)
            if cfg.spade_hidden != 128:
                for m in self.modules():
                    if isinstance(m, off.norms.SPADE):
                        spade_at(m, cfg.spade_hidden)

    class OASIS_Discriminator(base_d):
        def __setattr__(self, name, value):
            super().__setattr__(name, list(d_widths) if name == "channels" else value)

        def __init__(self, opt):
            super().__init__(opt)
            if cfg.channels_D != 64:
                self.body_up[-1] = off.discriminator.residual_block_D(2 * d_widths[1], cfg.channels_D, opt, 1)
                self.layer_up_last = nn.Conv2d(cfg.channels_D, opt.semantic_nc + 1, 1, 1, 0)

    off.generator.OASIS_Generator, off.discriminator.OASIS_Discriminator = OASIS_Generator, OASIS_Discriminator
    try:
        yield
    finally:
        off.generator.OASIS_Generator, off.discriminator.OASIS_Discriminator = base_g, base_d


def official_model(off, opt, cfg=None):
    """The official `OASIS_model(opt)` (its parameter-count lines go to stderr); with `cfg`, at
    that config's widths (`official_widths`)."""
    with contextlib.redirect_stdout(sys.stderr), (official_widths(off, cfg) if cfg is not None
                                                  else contextlib.nullcontext()):
        return off.models.OASIS_model(opt)


def official_optimizers(model, opt):
    """`train.py`'s two Adam optimisers."""
    return (torch.optim.Adam(model.netG.parameters(), lr=opt.lr_g, betas=(opt.beta1, opt.beta2)),
            torch.optim.Adam(model.netD.parameters(), lr=opt.lr_d, betas=(opt.beta1, opt.beta2)))


def official_step(model, losses_computer, optimizer_g, optimizer_d, image, label):
    """One pass of `train.py`'s loop body before its EMA update: the G step (`losses_G`,
    backward, Adam), then the D step (`losses_D`, backward, Adam). Returns the G and D losses."""
    model.netG.zero_grad()
    loss_g, _ = model(image, label, "losses_G", losses_computer)
    loss_g = loss_g.mean()
    loss_g.backward()
    optimizer_g.step()
    model.netD.zero_grad()
    loss_d, _ = model(image, label, "losses_D", losses_computer)
    loss_d = loss_d.mean()
    loss_d.backward()
    optimizer_d.step()
    return {"G": float(loss_g), "D": float(loss_d)}


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
