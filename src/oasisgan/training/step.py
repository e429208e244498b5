"""One OASIS training iteration, exactly as the official ``train.py`` + ``OASIS_model.forward``.

1. G step: ``fake = G(label, z)``; ``L_G = CE_{N+1}(D(fake), label + 1)`` class-balanced
   (+ ``lambda_vgg * VGG(fake, real)`` in the VGG ablation); Adam step of G.
2. D step with the freshly updated G: ``fake = G(label, z')`` under ``no_grad`` (G in train mode,
   as the official code, so its BatchNorm statistics move); ``L_D = CE(D(fake), 0) +
   CE_{N+1}(D(real), label + 1) + lambda_LM * MSE(D(mix), mix(D(real), D(fake)))`` with one LabelMix
   bit per class present; Adam step of D.
3. EMA of the whole generator state (``update_ema``).

D is called once in the G step and three times in the D step, in the official order, so its
spectral-norm power iterations advance exactly as there. With ``batch_d_calls`` (on, or auto on
small CPU maps; the fast path on, not under ``compile``) the D step's three calls are one call
on the concatenated batch: D has no batch statistics, and the accelerated D (`groups`) runs one
power iteration per original call and gives each part its own sigma -- the same function, batched.
In the G step only G's gradients are computed (``backward(inputs=G params)``); the official
code also accumulates D's, then discards them with ``netD.zero_grad()`` -- the same update,
less work.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn

from ..accel import is_accelerated, tuning
from ..labels import one_hot
from ..losses import labelmix_inputs, labelmix_loss, labelmix_mask, n1_loss
from .amp import Precision, to_memory_format
from .ema import update_ema

LOSS_NAMES = ("G", "G_vgg", "D_fake", "D_real", "LabelMix")


class TrainStep:
    """Holds the networks and optimisers; ``step(image, label)`` runs one iteration.

    `generator` / `discriminator` are the modules called for training (DDP wrappers under
    torchrun); `g` / `d` are the plain modules underneath.
    """

    def __init__(self, cfg, generator: nn.Module, discriminator: nn.Module, ema: Optional[nn.Module],
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, precision: Precision,
                 vgg: Optional[nn.Module] = None):
        self.cfg = cfg
        self.generator, self.discriminator, self.ema = generator, discriminator, ema
        self.g = getattr(generator, "module", generator)
        self.d = getattr(discriminator, "module", discriminator)
        self.opt_g, self.opt_d, self.precision, self.vgg = opt_g, opt_d, precision, vgg
        self.g_params = [p for p in self.g.parameters() if p.requires_grad]
        # The D step's three D calls as one batched call (exact; see the module docstring):
        # "on", "off", or "auto" (CPU maps of at most BATCH_D_MAX_PIXELS, see `batch_d`).
        able = is_accelerated(self.d) and not cfg.compile
        self.batched_d = cfg.batch_d_calls if able and cfg.batch_d_calls in ("on", "auto") else "off"
        # the accelerated G takes the label ids it would otherwise read off the one-hot
        self.g_takes_ids = is_accelerated(self.g)

    def batch_d(self, image: torch.Tensor) -> bool:
        if self.batched_d == "auto":
            return image.device.type == "cpu" and image[:, 0].numel() <= tuning.BATCH_D_MAX_PIXELS
        return self.batched_d == "on"

    def generate(self, net: nn.Module, onehot: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return net(onehot, ids=label) if self.g_takes_ids else net(onehot)

    def inputs(self, batch: Dict[str, torch.Tensor], device: torch.device):
        cl = self.cfg.channels_last
        nb = device.type == "cuda"
        image = to_memory_format(batch["image"].to(device, non_blocking=nb), cl)
        label = batch["label"].to(device, non_blocking=nb).long()
        onehot = to_memory_format(one_hot(label, self.cfg.semantic_nc), cl)
        return image, label, onehot

    def losses_g(self, image, label, onehot) -> Dict[str, torch.Tensor]:
        cfg = self.cfg
        with self.precision.autocast():
            fake = self.generate(self.generator, onehot, label)
            out = self.d(fake)  # plain module: no DDP reduction of D's (unused) gradients
        losses = {"G": n1_loss(out, label, True, cfg.class_balancing, cfg.dontcare_label,
                               cfg.fused_losses)}
        if self.vgg is not None:
            losses["G_vgg"] = cfg.lambda_vgg * self.vgg(fake.float(), image.float())
        return losses

    def losses_d(self, image, label, onehot) -> Dict[str, torch.Tensor]:
        cfg = self.cfg
        with self.precision.autocast():
            with torch.no_grad():
                fake = self.generate(self.g, onehot, label)
        # D calls draw no random numbers: the LabelMix bits come from the same RNG state
        # whether they are drawn before or between the D calls.
        mask = labelmix_mask(label) if cfg.labelmix else None
        inputs = [fake.to(image.dtype), image]
        if mask is not None:
            inputs.append(to_memory_format(labelmix_inputs(mask, image, inputs[0]), cfg.channels_last))
        with self.precision.autocast():
            if self.batch_d(image):
                outs = self.discriminator(torch.cat(inputs), groups=[x.shape[0] for x in inputs])
                outs = outs.split(image.shape[0])
            else:
                outs = [self.discriminator(x) for x in inputs]
        fused = cfg.fused_losses
        losses = {"D_fake": n1_loss(outs[0], label, False, fused=fused),
                  "D_real": n1_loss(outs[1], label, True, cfg.class_balancing, cfg.dontcare_label,
                                    fused)}
        if mask is not None:
            losses["LabelMix"] = cfg.lambda_labelmix * labelmix_loss(mask, outs[2], outs[0], outs[1],
                                                                     fused)
        return losses

    def step(self, batch: Dict[str, torch.Tensor], device: torch.device) -> Dict[str, torch.Tensor]:
        """One iteration; returns the detached loss terms (no host synchronisation)."""
        image, label, onehot = self.inputs(batch, device)
        # --- generator update ---
        self.opt_g.zero_grad(set_to_none=True)
        lg = self.losses_g(image, label, onehot)
        loss_g = sum(lg.values())
        self.precision.backward(loss_g, "g", inputs=self.g_params)
        self.precision.step(self.opt_g, "g")
        # --- discriminator update (fake regenerated by the updated G) ---
        self.opt_d.zero_grad(set_to_none=True)
        ld = self.losses_d(image, label, onehot)
        loss_d = sum(ld.values())
        self.precision.backward(loss_d, "d")
        self.precision.step(self.opt_d, "d")
        # --- EMA of the generator ---
        if self.ema is not None:
            update_ema(self.ema, self.g, self.cfg.ema_decay, self.cfg.fused_updates)
        out = {k: v.detach() for k, v in {**lg, **ld}.items()}
        out["D"] = loss_d.detach()
        return out
