"""ONNX export of the (EMA) generator, verified with onnxruntime against PyTorch.

The exported graph has two inputs and one output (float32):

    label  (B, N, H, W)       one-hot label map (N = semantic_nc; soft labels work too)
    z      (B, z_dim, H, W)   spatial noise: a vector per image broadcast over H x W reproduces
                              `synthesize(label, z=(B, z_dim))`; a piecewise map gives local control
                              (`oasisgan.synthesis.noise_map`, `resample_region`). Absent when the
                              model was trained without 3D noise (noise_3d = False).
    image  (B, 3, H, W)       in [-1, 1]

B is dynamic. H and W are dynamic too unless `static_size=True`, but must be multiples of the
model's size multiple (2**(num_res_blocks-1), 32 for the paper's models): the graph halves the
label map that many times. The export traces at `height x width` (default: the model's training
resolution) and the check runs onnxruntime at that size and at one other size.

Spectral norm: in eval mode the spectral-norm convs divide by sigma estimated from the stored
u/v vectors without a power iteration; the export copy replaces them by plain convs with the
weights computed exactly that way, so the ONNX graph holds plain eval-mode weights. Tracing runs
every op's reference (`oasisgan.ops`), so the graph holds only standard convolutions.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch
import torch.nn as nn

from .errors import OASISError, first_line
from .nn.layers import remove_spectral_norm
from .labels import one_hot
from .synthesis import valid_size


class ExportError(OASISError, RuntimeError):
    """Export failed or the exported model does not match PyTorch."""


class _ONNXGenerator(nn.Module):
    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, label: torch.Tensor, z: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.generator(label, z)


def export_generator(model) -> nn.Module:
    """A CPU float32 eval-mode copy of the generator ready for tracing: spectral norm folded into
    plain weights."""
    gen = model if isinstance(model, nn.Module) else model.generator
    gen = copy.deepcopy(gen).cpu().float().eval()
    remove_spectral_norm(gen)
    gen.requires_grad_(False)
    return gen


def _random_inputs(gen, batch: int, height: int, width: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, gen.semantic_nc, (batch, height // 8 + 1, width // 8 + 1), generator=g)
    ids = nn.functional.interpolate(ids[:, None].float(), size=(height, width), mode="nearest")[:, 0].long()
    label = one_hot(ids, gen.semantic_nc)
    z = torch.randn(batch, gen.z_dim, height, width, generator=g) if gen.noise_3d else None
    return label, z


def verify_onnx(path: Union[str, Path], model, height: int, width: int, batch: int = 2,
                seed: int = 0) -> float:
    """Max abs difference between onnxruntime (CPU) and the PyTorch generator (as it is, spectral
    norm hooks included; on the CPU) on random input."""
    import onnxruntime as ort

    gen = model if isinstance(model, nn.Module) else model.generator
    label, z = _random_inputs(gen, batch, height, width, seed)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"label": label.numpy()}
    if z is not None:
        feeds["z"] = z.numpy()
    got = sess.run(["image"], feeds)[0]
    if next(gen.parameters()).device.type != "cpu":  # compare fp32 CPU to CPU (no TF32 rounding)
        gen = copy.deepcopy(gen).cpu().float()
    with torch.no_grad():
        ref = gen(label, z).float().numpy()
    if got.shape != ref.shape:
        raise ExportError(f"{path}: onnxruntime output shape {got.shape} != PyTorch {ref.shape}")
    return float(np.abs(got - ref).max())


def export_onnx(model, out: Union[str, Path], height: Optional[int] = None, width: Optional[int] = None,
                opset: int = 17, static_size: bool = False, check: bool = True,
                atol: float = 1e-4) -> Dict[str, Any]:
    """Export `model`'s generator (an OASISModel: the EMA weights) to ONNX and check it.

    Returns a report dict: path, inputs, height, width, dynamic_size, opset, max_abs_diff (at the
    export size), max_abs_diff_other_size (None with static_size), checked. Raises ExportError
    when onnxruntime and PyTorch differ by more than `atol`.
    """
    gen0 = model if isinstance(model, nn.Module) else model.generator
    cfg = None if isinstance(model, nn.Module) else model.config
    m = gen0.size_multiple
    height = height or (cfg.height if cfg is not None else 8 * m)
    width = width or (cfg.width if cfg is not None else 8 * m)
    if height % m or width % m or height <= 0 or width <= 0:
        h, w = valid_size(height, width, m)
        raise ExportError(f"export size {height}x{width}: height and width must be multiples of {m} "
                          f"for this model, e.g. --height {h} --width {w}")
    gen = export_generator(model)
    label, z = _random_inputs(gen, 2, height, width)
    names = ["label"] + (["z"] if gen.noise_3d else [])
    dyn = {0: "batch"} if static_size else {0: "batch", 2: "height", 3: "width"}
    dynamic_axes = {n: dict(dyn) for n in names + ["image"]}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    args = (label, z) if z is not None else (label,)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about the size checks (constant here)
            torch.onnx.export(_ONNXGenerator(gen).eval(), args, str(out), input_names=names,
                              output_names=["image"], dynamic_axes=dynamic_axes, opset_version=opset,
                              do_constant_folding=True, dynamo=False)
    except Exception as e:
        raise ExportError(f"ONNX export failed: {e.__class__.__name__}: {first_line(e)}") from e
    report: Dict[str, Any] = {"path": str(out), "inputs": names, "height": height, "width": width,
                              "dynamic_size": not static_size, "size_multiple": m, "opset": opset,
                              "max_abs_diff": None, "max_abs_diff_other_size": None, "checked": False}
    if not check:
        return report
    import onnx

    try:
        onnx.checker.check_model(str(out))
    except Exception as e:
        raise ExportError(f"{out}: the ONNX checker rejects the exported model: {e}") from None
    report["max_abs_diff"] = verify_onnx(out, model, height, width, batch=2, seed=1)
    if not static_size:  # another size and batch: the dynamic axes must really work
        report["max_abs_diff_other_size"] = verify_onnx(out, model, height + m, width + 2 * m, batch=3, seed=2)
    report["checked"] = True
    worst = max(v for v in (report["max_abs_diff"], report["max_abs_diff_other_size"]) if v is not None)
    if not worst <= atol:  # also catches NaN
        raise ExportError(f"{out}: onnxruntime and PyTorch differ by {worst:.3g} (max abs, limit {atol:g}); "
                          "the exported file is not trustworthy")
    return report
