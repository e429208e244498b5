"""What every segmenter shares: loading original state dicts, label mapping, the wrapper.

A `Segmenter` takes generator-convention images ((B, 3, H, W) in [-1, 1]) and returns logits
(B, C, H, W) over its own C classes at the input resolution. `label_map` (a LongTensor over the
model's label ids) says which segmenter class each model id is scored as, -1 for ids that are
not scored (don't care, classes the segmenter does not know).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...loading.weights import WeightsError
from ...errors import OASISError


_SYNC_BN_EXTRAS = ("._tmp_running_mean", "._tmp_running_var", "._running_iter")


def load_original_state_dict(module: nn.Module, state: Dict[str, torch.Tensor], what: str,
                             path: Optional[Union[str, Path]] = None, prefix: str = "") -> None:
    """Load `state` (the original project's key names) into `module`, strictly.

    Tolerated: a ``module.`` prefix (DataParallel), missing BatchNorm ``num_batches_tracked``
    buffers (older files) and the training-only accumulators of CSAIL's synchronized BatchNorm
    (``_tmp_running_mean``, ``_tmp_running_var``, ``_running_iter``). Anything else missing,
    unexpected or of the wrong shape raises a `WeightsError` naming a few keys.
    """
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()
             if not k.endswith(_SYNC_BN_EXTRAS)}
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    bad_shape = [f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
                 for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    where = f" {path}" if path is not None else ""
    if missing or unexpected or bad_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {', '.join(missing[:4])}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {', '.join(unexpected[:4])}")
        if bad_shape:
            parts.append(f"{len(bad_shape)} shape mismatch(es), e.g. {'; '.join(bad_shape[:3])}")
        raise WeightsError(f"{what}{where} does not fit the architecture: " + "; ".join(parts))
    for k in own:
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = own[k]
    module.load_state_dict(state, strict=True)


def identity_label_map(num_labels: int, dontcare: Optional[int]) -> torch.Tensor:
    """Model id k is segmenter class k; the don't-care id is not scored."""
    m = torch.arange(num_labels)
    if dontcare is not None:
        m[dontcare] = -1
    return m


def shifted_label_map(num_labels: int, num_classes: int) -> torch.Tensor:
    """Model id k >= 1 is segmenter class k-1 (ADE20K, COCO-Stuff); id 0 (don't care) is not scored."""
    m = torch.arange(num_labels) - 1
    m[m >= num_classes] = -1
    return m


def label_map_from_spec(spec, num_labels: int, dontcare: Optional[int]) -> torch.Tensor:
    """A user's class map: a list (index = model id, value = segmenter class or -1/None), or a
    dict {model id: segmenter class}; ids not named are not scored. A path to a JSON file of
    either form works too."""
    import json


    if isinstance(spec, (str, Path)):
        try:
            spec = json.loads(Path(spec).read_text())
        except (OSError, ValueError) as e:
            raise OASISError(f"cannot read class map {spec}: {e}") from None
    m = torch.full((num_labels,), -1, dtype=torch.long)
    if isinstance(spec, dict):
        spec = spec.get("model_to_segmenter", spec)
        items = [(int(k), v) for k, v in spec.items()]
    else:
        items = list(enumerate(spec))
    for k, v in items:
        if not 0 <= k < num_labels:
            raise OASISError(f"class map names model id {k}, but the model has ids 0..{num_labels - 1}")
        m[k] = -1 if v is None else int(v)
    if dontcare is not None:
        m[dontcare] = -1
    return m


class Segmenter(nn.Module):
    """A segmentation network behind the common interface.

    net: the network; preprocess: [-1, 1] RGB -> the network's input; the network's output
    logits (any resolution) are resized bilinearly to the input size. `input_size` (H, W), when
    given, resizes the images before the network (the labels are never resized here).
    """

    def __init__(self, net: nn.Module, num_classes: int, label_map: torch.Tensor, name: str,
                 preprocess: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                 input_size: Optional[Sequence[int]] = None, class_names: Optional[Sequence[str]] = None,
                 weights_sha256: Optional[str] = None):
        super().__init__()
        self.net, self.num_classes, self.name = net, int(num_classes), name
        self.preprocess = preprocess
        self.input_size = tuple(input_size) if input_size else None
        self.class_names = list(class_names) if class_names is not None else None
        self.weights_sha256 = weights_sha256
        if label_map.numel() and int(label_map.max()) >= self.num_classes:
            raise ValueError(f"label map points at class {int(label_map.max())}, but {name} has "
                             f"{self.num_classes} classes")
        self.register_buffer("label_map", label_map.long(), persistent=False)
        valid = torch.zeros(self.num_classes, dtype=torch.bool)
        valid[label_map[label_map >= 0]] = True
        self.register_buffer("valid_classes", valid, persistent=False)

    def map_labels(self, label: torch.Tensor) -> torch.Tensor:
        """Model ids (B, H, W) -> segmenter classes, -1 where not scored."""
        label = label.long()
        ok = (label >= 0) & (label < self.label_map.numel())
        return torch.where(ok, self.label_map.to(label.device)[label.clamp(0, self.label_map.numel() - 1)],
                           torch.full_like(label, -1))

    scales: Optional[Sequence[int]] = None  # multi-scale test (short sides), see `multiscale_forward`
    real_miou: Optional[float] = None  # its mIoU on the real validation images, when known (reference U-Net)
    max_size: int = 1000
    size_multiple: int = 32

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.scales:
            return self.multiscale_forward(images)
        return self._single_forward(images)

    def multiscale_forward(self, images: torch.Tensor) -> torch.Tensor:
        """CSAIL's test protocol (``eval.py``): for each short side s, resize so the short side is s
        (long side at most `max_size`), round both sides up to a multiple of `size_multiple`, run the
        network, resize the class probabilities to the input size and average them over the scales.
        Returns log-probabilities (same argmax)."""
        h, w = images.shape[-2:]
        total = 0
        for s in self.scales:
            scale = min(s / min(h, w), self.max_size / max(h, w))
            th, tw = (((int(v * scale) - 1) // self.size_multiple + 1) * self.size_multiple for v in (h, w))
            x = F.interpolate(images, size=(th, tw), mode="bilinear", align_corners=False)
            total = total + F.softmax(self._single_forward(x, out_size=(h, w), resize=False).float(), dim=1)
        return torch.log(total / len(self.scales) + 1e-12)

    def _single_forward(self, images: torch.Tensor, out_size=None, resize: bool = True) -> torch.Tensor:
        h, w = out_size if out_size is not None else images.shape[-2:]
        x = images
        if resize and self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        if self.preprocess is not None:
            x = self.preprocess(x)
        logits = self.net(x)
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        if logits.dim() != 4:
            raise ValueError(f"segmenter {self.name} returned shape {tuple(logits.shape)}, expected (B, C, H, W)")
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"segmenter {self.name} returned {logits.shape[1]} channels, expected {self.num_classes}")
        if tuple(logits.shape[-2:]) != (h, w):
            logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
        return logits

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class per pixel (B, H, W), chosen among the scored classes only."""
        logits = self.forward(images).float()
        logits = logits.masked_fill(~self.valid_classes.to(logits.device)[None, :, None, None], float("-inf"))
        return logits.argmax(1)


def imagenet_preprocess(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406], device=x.device, dtype=x.dtype)[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225], device=x.device, dtype=x.dtype)[None, :, None, None]
    return ((x + 1) / 2 - mean) / std


def unit_preprocess(x: torch.Tensor) -> torch.Tensor:
    return (x + 1) / 2


INPUT_CONVENTIONS = {
    "minus1_1": None,  # the generator's [-1, 1]
    "0_1": unit_preprocess,
    "imagenet": imagenet_preprocess,
    "0_255": lambda x: (x + 1) * 127.5,
}
