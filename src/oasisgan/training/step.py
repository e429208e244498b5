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
small CPU maps; not under ``compile``) the D step's three calls are one call on the concatenated
batch (`ops.calls`): D has no batch statistics, and each spectral-norm conv runs one power
iteration per original call and gives each part its own sigma -- the same function, batched.
G takes the label ids (the one-hot is built inside, or never: `ops.label_conv`); every op runs
its reference under ``fast_spade: false``, the losses' under ``fused_losses: false``.
In the G step only G's gradients are computed (``backward(inputs=G params)``); the official
code also accumulates D's, then discards them with ``netD.zero_grad()`` -- the same update,
less work.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn

from .. import ops
from ..losses import labelmix_inputs, labelmix_loss, labelmix_mask, n1_loss
from .amp import Precision, to_memory_format
from .ema import update_ema


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
        # impl "fast" (on), "ref" (off), None (auto: small CPU maps, `ops.calls`).
        batch = "off" if cfg.compile else cfg.batch_d_calls
        self.batch_d_impl = {"on": "fast", "off": "ref"}.get(batch)
        self.loss_impl = None if cfg.fused_losses else "ref"
        self.impl = None if cfg.fast_spade else "ref"

    def inputs(self, batch: Dict[str, torch.Tensor], device: torch.device):
        nb = device.type == "cuda"
        image = to_memory_format(batch["image"].to(device, non_blocking=nb), self.cfg.channels_last)
        label = batch["label"].to(device, non_blocking=nb).long()
        return image, label

    def losses_g(self, image, label) -> Dict[str, torch.Tensor]:
        cfg = self.cfg
        with self.precision.autocast():
            fake = self.generator(label)
            out = self.d(fake)  # plain module: no DDP reduction of D's (unused) gradients
        losses = {"G": n1_loss(out, label, True, cfg.class_balancing, cfg.dontcare_label,
                               self.loss_impl, cfg.class_weight_cap)}
        if self.vgg is not None:
            losses["G_vgg"] = cfg.lambda_vgg * self.vgg(fake.float(), image.float())
        return losses

    def losses_d(self, image, label) -> Dict[str, torch.Tensor]:
        cfg = self.cfg
        with self.precision.autocast():
            with torch.no_grad():
                fake = self.g(label)
        # D calls draw no random numbers: the LabelMix bits come from the same RNG state
        # whether they are drawn before or between the D calls.
        mask = labelmix_mask(label) if cfg.labelmix else None
        inputs = [fake.to(image.dtype), image]
        if mask is not None:
            inputs.append(to_memory_format(labelmix_inputs(mask, image, inputs[0]), cfg.channels_last))
        with self.precision.autocast():
            outs = ops.calls(self.discriminator, inputs, self.batch_d_impl)
        impl = self.loss_impl
        losses = {"D_fake": n1_loss(outs[0], label, False, impl=impl),
                  "D_real": n1_loss(outs[1], label, True, cfg.class_balancing, cfg.dontcare_label, impl,
                                    cfg.class_weight_cap)}
        if mask is not None:
            losses["LabelMix"] = cfg.lambda_labelmix * labelmix_loss(mask, outs[2], outs[0], outs[1], impl)
        return losses

    def step(self, batch: Dict[str, torch.Tensor], device: torch.device) -> Dict[str, torch.Tensor]:
        """One iteration; returns the detached loss terms (no host synchronisation)."""
        with ops.use(self.impl):
            return self._step(batch, device)

    def _step(self, batch: Dict[str, torch.Tensor], device: torch.device) -> Dict[str, torch.Tensor]:
        image, label = self.inputs(batch, device)
        # --- generator update ---
        self.opt_g.zero_grad(set_to_none=True)
        lg = self.losses_g(image, label)
        loss_g = sum(lg.values())
        self.precision.backward(loss_g, "g", inputs=self.g_params)
        self.precision.step(self.opt_g, "g")
        # --- discriminator update (fake regenerated by the updated G) ---
        self.opt_d.zero_grad(set_to_none=True)
        ld = self.losses_d(image, label)
        loss_d = sum(ld.values())
        self.precision.backward(loss_d, "d")
        self.precision.step(self.opt_d, "d")
        # --- EMA of the generator ---
        if self.ema is not None:
            update_ema(self.ema, self.g, self.cfg.ema_decay, self.cfg.fused_updates)
        out = {k: v.detach() for k, v in {**lg, **ld}.items()}
        out["D"] = loss_d.detach()
        return out
