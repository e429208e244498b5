"""DeepLabV2-ResNet101 (MSC) for COCO-Stuff 164k (kazuto1011/deeplab-pytorch).

``deeplabv2_resnet101_msc-cocostuff164k-100000.pth`` holds ``MSC(base=DeepLabV2(...))``: keys
``base.layer1.conv1.{conv,bn}.*`` (7x7 stem), ``base.layer{2..5}.block<i>.{reduce,conv3x3,
increase,shortcut}.{conv,bn}.*`` (MSRA bottlenecks, dilations 2 and 4 in layer4/5, output stride 8)
and ``base.aspp.c{0..3}.{weight,bias}`` (rates 6, 12, 18, 24), 182 classes (COCO-Stuff ids 0..181;
our id k is class k-1, our id 0 = raw 255 is not scored). Inference is multi-scale as in the
original MSC eval mode: the pixel-wise max of the logits at scales 1, 0.5 and 0.75.
Input: BGR in [0, 255] minus the Caffe mean (104.008, 116.669, 122.675), no std.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import load_original_state_dict, Segmenter, shifted_label_map

DEEPLAB_FILENAME = "deeplabv2_resnet101_msc-cocostuff164k-100000.pth"
DEEPLAB_URL = "https://github.com/kazuto1011/deeplab-pytorch/releases/download/v1.0/" + DEEPLAB_FILENAME
DEEPLAB_MEAN_BGR = (104.008, 116.669, 122.675)


class ConvBnReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int, padding: int, dilation: int, relu: bool = True):
        super().__init__()
        self.add_module("conv", nn.Conv2d(cin, cout, k, stride, padding, dilation, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout, eps=1e-5, momentum=1 - 0.999))
        if relu:
            self.add_module("relu", nn.ReLU())


class MSRABottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dilation: int, downsample: bool):
        super().__init__()
        mid = cout // 4
        self.reduce = ConvBnReLU(cin, mid, 1, stride, 0, 1)
        self.conv3x3 = ConvBnReLU(mid, mid, 3, 1, dilation, dilation)
        self.increase = ConvBnReLU(mid, cout, 1, 1, 0, 1, relu=False)
        self.shortcut = ConvBnReLU(cin, cout, 1, stride, 0, 1, relu=False) if downsample else nn.Identity()

    def forward(self, x):
        return F.relu(self.increase(self.conv3x3(self.reduce(x))) + self.shortcut(x))


class ResLayer(nn.Sequential):
    def __init__(self, n: int, cin: int, cout: int, stride: int, dilation: int):
        super().__init__()
        for i in range(n):
            self.add_module(f"block{i + 1}", MSRABottleneck(cin if i == 0 else cout, cout,
                                                            stride if i == 0 else 1, dilation, i == 0))


class Stem(nn.Sequential):
    def __init__(self, cout: int):
        super().__init__()
        self.add_module("conv1", ConvBnReLU(3, cout, 7, 2, 3, 1))
        self.add_module("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int, rates=(6, 12, 18, 24)):
        super().__init__()
        for i, r in enumerate(rates):
            self.add_module(f"c{i}", nn.Conv2d(cin, cout, 3, 1, padding=r, dilation=r, bias=True))

    def forward(self, x):
        return sum(stage(x) for stage in self.children())


class DeepLabV2(nn.Sequential):
    def __init__(self, n_classes: int = 182, n_blocks=(3, 4, 23, 3), rates=(6, 12, 18, 24)):
        super().__init__()
        self.add_module("layer1", Stem(64))
        self.add_module("layer2", ResLayer(n_blocks[0], 64, 256, 1, 1))
        self.add_module("layer3", ResLayer(n_blocks[1], 256, 512, 2, 1))
        self.add_module("layer4", ResLayer(n_blocks[2], 512, 1024, 1, 2))
        self.add_module("layer5", ResLayer(n_blocks[3], 1024, 2048, 1, 4))
        self.add_module("aspp", ASPP(2048, n_classes, rates))


class DeepLabV2MSC(nn.Module):
    """forward(x preprocessed) -> logits (B, 182, ~H/8, ~W/8): max over scales 1, 0.5, 0.75."""

    def __init__(self, n_classes: int = 182, scales=(0.5, 0.75)):
        super().__init__()
        self.base = DeepLabV2(n_classes)
        self.scales = tuple(scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.base(x)
        size = logits.shape[2:]
        out = [logits]
        for s in self.scales:
            h = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
            out.append(F.interpolate(self.base(h), size=size, mode="bilinear", align_corners=False))
        return torch.stack(out).max(0)[0]


def deeplab_preprocess(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(DEEPLAB_MEAN_BGR, device=x.device, dtype=x.dtype)[None, :, None, None]
    return ((x + 1) * 127.5).flip(1) - mean  # RGB [-1, 1] -> BGR [0, 255] - mean


def build_deeplab_segmenter(state=None, num_labels: int = 183, input_size=None, sha256=None,
                            class_names=None) -> Segmenter:
    net = DeepLabV2MSC(182)
    if state is not None:
        load_original_state_dict(net, state, "DeepLabV2-ResNet101 COCO-Stuff weights")
    names = list(class_names[1:183]) if class_names is not None and len(class_names) >= 183 else None
    return Segmenter(net.eval(), 182, shifted_label_map(num_labels, 182), "deeplabv2-resnet101",
                     deeplab_preprocess, input_size=input_size, class_names=names, weights_sha256=sha256)
