"""Segmenters for mIoU: the paper's three, a user's TorchScript file, the OASIS discriminator, and
the reference U-Net trained with `oasis segmenter train`.

`load_segmenter(spec, cfg, ...)` resolves what the user named:

- ``None``: the paper's segmenter for the preset's dataset (DRN-D-105 for Cityscapes,
  UperNet-ResNet101 for ADE20K/ADE20K-outdoor, DeepLabV2-ResNet101 for COCO-Stuff), weights from
  `weights`, the cache or the official address;
- ``"drn"``, ``"upernet"``, ``"deeplab"``: that architecture (weights as above);
- ``"discriminator"``: the OASIS discriminator, fake channel dropped;
- a file: an oasisgan reference segmenter, a TorchScript module, or a state dict of one of the
  three architectures (recognised by its key names); a directory: UperNet's
  ``encoder_epoch_*.pth`` + ``decoder_epoch_*.pth``.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from ...errors import OASISError, first_line
from ...loading.weights import WeightsError, cache_dir, load_state_dict_file, resolve_weights, sha256_of
from ...nn import Discriminator
from .common import INPUT_CONVENTIONS, Segmenter, identity_label_map, label_map_from_spec, load_original_state_dict
from .deeplab import DEEPLAB_FILENAME, DEEPLAB_URL, DeepLabV2MSC, build_deeplab_segmenter
from .drn import DRN_WEIGHTS_FILENAME, DRN_WEIGHTS_PAGE, DRNSeg, build_drn_segmenter, cityscapes_label_map
from .unet import (ReferenceSegmenter, ReferenceUNet, build_reference_segmenter, is_segmenter_checkpoint,
                   read_segmenter_checkpoint, segmenter_checkpoint)
from .upernet import (UPERNET_DECODER_FILENAME, UPERNET_ENCODER_FILENAME, UPERNET_URL_ROOT, UperNetResNet101,
                      build_upernet_segmenter)

__all__ = ["Segmenter", "ReferenceSegmenter", "ReferenceUNet", "DRNSeg", "UperNetResNet101", "DeepLabV2MSC",
           "load_segmenter", "discriminator_segmenter", "torchscript_segmenter", "default_segmenter_name",
           "segmenter_checkpoint", "read_segmenter_checkpoint", "cityscapes_label_map",
           "load_original_state_dict", "PAPER_SEGMENTERS"]

PAPER_SEGMENTERS = {"cityscapes": "drn", "ade20k": "upernet", "ade20k-outdoor": "upernet", "coco-stuff": "deeplab"}
_ALIASES = {"drn": "drn", "drn-d-105": "drn", "drn_d_105": "drn", "upernet": "upernet",
            "upernet-resnet101": "upernet", "upernet101": "upernet", "deeplab": "deeplab",
            "deeplabv2": "deeplab", "deeplabv2-resnet101": "deeplab"}


class _DropFakeChannel(nn.Module):
    def __init__(self, disc: nn.Module):
        super().__init__()
        self.disc = disc

    def forward(self, x):
        return self.disc(x)[:, 1:]


def discriminator_segmenter(discriminator: nn.Module, cfg) -> Segmenter:
    """The OASIS discriminator as an N-class segmenter: logits[:, 1:] (channel 0 is "fake")."""
    n = cfg.semantic_nc
    return Segmenter(_DropFakeChannel(discriminator).eval(), n, identity_label_map(n, cfg.dontcare_label),
                     "oasis-discriminator", None, class_names=cfg.class_names)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def torchscript_segmenter(path: Union[str, Path], cfg, class_map=None, input_range: str = "minus1_1",
                          num_classes: Optional[int] = None, input_size=None) -> Segmenter:
    """A user's TorchScript segmenter: images in `input_range` (minus1_1, 0_1, imagenet, 0_255)
    -> logits (B, C, h, w). `class_map` maps model ids to its classes (default: the same ids)."""
    path = Path(path)
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            net = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise OASISError(f"cannot load TorchScript segmenter {path}: {first_line(e)}") from None
    if input_range not in INPUT_CONVENTIONS:
        raise OASISError(f"unknown segmenter input range {input_range!r}: use one of {', '.join(INPUT_CONVENTIONS)}")
    n_labels = cfg.semantic_nc
    if class_map is not None:
        lmap = label_map_from_spec(class_map, n_labels, cfg.dontcare_label)
    else:
        lmap = identity_label_map(n_labels, cfg.dontcare_label)
    if num_classes is None:
        with torch.no_grad():
            probe = torch.zeros(1, 3, cfg.height, cfg.width)
            pre = INPUT_CONVENTIONS[input_range]
            out = net.eval()(pre(probe) if pre else probe)
            out = out[0] if isinstance(out, (tuple, list)) else out
        num_classes = int(out.shape[1])
    if class_map is None and num_classes < n_labels:
        raise OASISError(f"TorchScript segmenter {path} predicts {num_classes} classes for a model with "
                         f"{n_labels} label ids: give a class map (--class-map FILE.json)")
    return Segmenter(net.eval(), num_classes, lmap, f"torchscript:{path.name}", INPUT_CONVENTIONS[input_range],
                     input_size=input_size, weights_sha256=sha256_of(path))


def _weights(path, name: str, option: str):
    if name == "drn":
        try:
            p = resolve_weights(path, filename=DRN_WEIGHTS_FILENAME, url=None, sha256_prefix=None,
                                what=f"DRN-D-105 Cityscapes weights ({DRN_WEIGHTS_FILENAME})", option=option)
        except WeightsError as e:
            raise WeightsError(f"{e}\nDownload {DRN_WEIGHTS_FILENAME} from {DRN_WEIGHTS_PAGE} and pass it "
                               f"with {option} or put it at {cache_dir() / DRN_WEIGHTS_FILENAME}") from None
        return [load_state_dict_file(p, "DRN-D-105 weights")], sha256_of(p)
    if name == "deeplab":
        p = resolve_weights(path, filename=DEEPLAB_FILENAME, url=DEEPLAB_URL, sha256_prefix=None,
                            what=f"DeepLabV2 COCO-Stuff weights ({DEEPLAB_FILENAME})", option=option)
        return [load_state_dict_file(p, "DeepLabV2 weights")], sha256_of(p)
    if name == "upernet":
        if path is not None and Path(path).is_dir():
            d = Path(path)
            enc = sorted(d.glob("encoder_epoch_*.pth"))
            dec = sorted(d.glob("decoder_epoch_*.pth"))
            if not enc or not dec:
                raise WeightsError(f"{d}: expected encoder_epoch_*.pth and decoder_epoch_*.pth (UperNet-ResNet101)")
            pe, pd = enc[-1], dec[-1]
        elif path is not None:
            pe = Path(path)
            pd = pe.with_name(pe.name.replace("encoder", "decoder"))
            if pe == pd or not pd.is_file():
                raise WeightsError(f"UperNet needs the decoder file beside {pe} (decoder_epoch_50.pth); "
                                   "or pass the directory holding both")
        else:
            pe = resolve_weights(None, filename="upernet101/" + UPERNET_ENCODER_FILENAME,
                                 url=UPERNET_URL_ROOT + UPERNET_ENCODER_FILENAME, sha256_prefix=None,
                                 what="UperNet-ResNet101 ADE20K encoder weights", option=option)
            pd = resolve_weights(None, filename="upernet101/" + UPERNET_DECODER_FILENAME,
                                 url=UPERNET_URL_ROOT + UPERNET_DECODER_FILENAME, sha256_prefix=None,
                                 what="UperNet-ResNet101 ADE20K decoder weights", option=option)
        return ([load_state_dict_file(pe, "UperNet encoder weights"), load_state_dict_file(pd, "UperNet decoder weights")],
                sha256_of(pe)[:32] + sha256_of(pd)[:32])
    raise ValueError(name)


def _detect_state_dict_arch(state) -> Optional[str]:
    keys = set(state)
    if "base.0.0.weight" in keys and "seg.weight" in keys:
        return "drn"
    if any(k.startswith("base.layer1.conv1.conv.") for k in keys) and "base.aspp.c0.weight" in keys:
        return "deeplab"
    if "conv1.weight" in keys and "layer4.0.conv1.weight" in keys and "conv3.weight" in keys:
        return "upernet"
    return None


def default_segmenter_name(cfg) -> Optional[str]:
    return PAPER_SEGMENTERS.get(cfg.dataset)


def load_segmenter(spec, cfg, *, weights=None, class_map=None, input_range: str = "minus1_1",
                   input_size: Optional[Sequence[int]] = None, discriminator: Optional[nn.Module] = None,
                   device="cpu", scales: Optional[Sequence[int]] = None) -> Segmenter:
    """Resolve `spec` (see the module docstring) into a `Segmenter` in eval mode on `device`.

    `scales`: short sides for multi-scale testing (CSAIL's protocol, e.g. 300,375,450,525,600);
    default: one pass at the generated (or `input_size`) resolution."""
    seg = _load_segmenter(spec, cfg, weights=weights, class_map=class_map, input_range=input_range,
                          input_size=input_size, discriminator=discriminator, device=device)
    if scales:
        seg.scales = [int(s) for s in scales]
    return seg


def _load_segmenter(spec, cfg, *, weights, class_map, input_range, input_size, discriminator, device) -> Segmenter:
    n = cfg.semantic_nc
    if spec is None:
        spec = default_segmenter_name(cfg)
        if spec is None:
            raise OASISError(
                f"mIoU on the '{cfg.preset}' data needs a segmenter: train the reference one with "
                "`oasis segmenter train --preset ... --data-root DIR` (saved as DIR/reference_segmenter.pt and "
                "then used automatically), or pass --segmenter FILE (reference segmenter or TorchScript) or "
                "--segmenter discriminator")
    if isinstance(spec, nn.Module):
        if isinstance(getattr(spec, "module", spec), Discriminator):
            return discriminator_segmenter(getattr(spec, "module", spec), cfg).to(device)
        seg = spec if isinstance(spec, Segmenter) else Segmenter(
            spec, n, identity_label_map(n, cfg.dontcare_label), type(spec).__name__)
        return seg.eval().to(device)
    name = str(spec)
    if name == "discriminator":
        if discriminator is None:
            raise OASISError("--segmenter discriminator: this checkpoint has no discriminator weights")
        return discriminator_segmenter(discriminator, cfg).to(device)
    key = _ALIASES.get(name.lower())
    if key is not None:
        states, digest = _weights(weights, key, "--segmenter-weights")
        return _build_paper(key, states, cfg, input_size, digest).to(device)
    path = Path(name)
    if path.is_dir():
        states, digest = _weights(path, "upernet", "--segmenter")
        return _build_paper("upernet", states, cfg, input_size, digest).to(device)
    if not path.is_file():
        raise WeightsError(f"segmenter not found: {name} (a file, a directory, or one of drn, upernet, "
                           "deeplab, discriminator)")
    if _is_torchscript(path):
        return torchscript_segmenter(path, cfg, class_map, input_range, input_size=input_size).to(device)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"cannot read segmenter {path}: {first_line(e)}") from None
    if is_segmenter_checkpoint(obj):
        return build_reference_segmenter(read_segmenter_checkpoint(path), n, path=path).to(device)
    state = load_state_dict_file(path, "segmenter weights")
    arch = _detect_state_dict_arch(state)
    if arch is None:
        raise WeightsError(f"{path}: not a reference segmenter, TorchScript file, or DRN-D-105 / UperNet / "
                           "DeepLabV2 state dict (no known key names)")
    if arch == "upernet":
        states, digest = _weights(path, "upernet", "--segmenter")
    else:
        states, digest = [state], sha256_of(path)
    return _build_paper(arch, states, cfg, input_size, digest).to(device)


def _build_paper(key: str, states, cfg, input_size, digest) -> Segmenter:
    n = cfg.semantic_nc
    expected = {"drn": 35, "upernet": 151, "deeplab": 183}[key]
    if n != expected:
        raise OASISError(f"the {key} segmenter scores the {'Cityscapes' if key == 'drn' else 'ADE20K' if key == 'upernet' else 'COCO-Stuff'} "
                         f"classes ({expected} label ids), but this model has {n}")
    if key == "drn":
        return build_drn_segmenter(states[0], n, input_size, digest)
    if key == "upernet":
        return build_upernet_segmenter(states[0], states[1], n, input_size, digest, cfg.class_names)
    return build_deeplab_segmenter(states[0], n, input_size, digest, cfg.class_names)
