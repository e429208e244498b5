"""Opt-in speed modes. All are off by default, because none is bit-identical to the official
float32 training.

- ``amp: bf16`` -- forward passes under ``torch.autocast(dtype=bfloat16)`` (CUDA with bf16
  support, or CPU). Convolutions run in bf16 (about 1.5-2x faster on Ampere+ GPUs, half the
  activation memory); losses, optimiser state and weights stay float32. bf16 has float32's range,
  so no loss scaling is needed.
- ``amp: fp16`` -- autocast to float16 with a ``GradScaler`` per optimiser (CUDA only), which
  multiplies the losses so small gradients do not underflow and skips steps whose gradients
  overflow (counted in ``skipped``, logged as ``amp/skipped_steps``). The scalers' state is saved
  in checkpoints and restored by ``--resume``.
- ``channels_last`` -- NHWC memory layout for the networks and their inputs: faster convolutions
  with tensor cores (GPU, especially with AMP); usually no gain on CPU.
- ``compile`` -- ``torch.compile`` of the generator's and discriminator's forward passes: a
  one-off compilation of a minute or more, then fewer kernel launches and fused element-wise ops
  (typically 10-30% faster on GPU). Weights and checkpoints are unchanged.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from ..config import ConfigError


# Devices where ``amp: fp16`` is accepted. Its loss scaling would also run on a CPU (the tests use
# that to check the logic), but float16 arithmetic there is slow and bf16 has the range to spare.
FP16_DEVICES = ("cuda",)


class Precision:
    """Autocast context and gradient scaling for one training run."""

    def __init__(self, mode: str, device: torch.device):
        self.mode, self.device = mode, device
        if mode == "fp16" and device.type not in FP16_DEVICES:
            raise ConfigError("config field 'amp' = 'fp16': float16 training needs a CUDA device "
                              "(use amp=bf16 on CPU)")
        if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("config field 'amp' = 'bf16': this GPU does not support bfloat16 "
                              "(use amp=fp16)")
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        enabled = mode == "fp16"
        self.updates = 0  # optimiser steps started: how the loop tells a clean failure from a half update
        self.skipped = {"g": 0, "d": 0}  # fp16: steps the scaler skipped for non-finite gradients
        self.scalers = {"g": torch.amp.GradScaler(device.type, enabled=enabled),
                        "d": torch.amp.GradScaler(device.type, enabled=enabled)}

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, which: str, inputs=None) -> None:
        self.scalers[which].scale(loss).backward(inputs=inputs)

    def step(self, optimizer: torch.optim.Optimizer, which: str) -> None:
        self.updates += 1  # counted before: a failure inside an update leaves the weights unknown
        scaler = self.scalers[which]
        if scaler.is_enabled():
            scale = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            # update() lowers the scale exactly when step() found inf/NaN gradients and skipped
            self.skipped[which] += int(scaler.get_scale() < scale)
        else:
            optimizer.step()

    def state_dict(self) -> Optional[Dict[str, Any]]:
        if self.mode != "fp16":
            return None
        return {**{k: s.state_dict() for k, s in self.scalers.items()}, "skipped": dict(self.skipped)}

    def load_state_dict(self, state: Optional[Dict[str, Any]]) -> None:
        if state and self.mode == "fp16":
            for k, s in self.scalers.items():
                if k in state:
                    s.load_state_dict(state[k])
            self.skipped.update(state.get("skipped", {}))


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def prepare_module(module: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """channels_last and torch.compile applied in place (the module object and its state dict
    keys stay the same, so EMA, DDP and checkpoints need no special cases)."""
    if channels_last:
        module.to(memory_format=torch.channels_last)
    if compile:
        module.compile()
    return module
