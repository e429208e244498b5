"""DRN-D-105 for Cityscapes (fyu/drn ``segment.py``: ``DRNSeg('drn_d_105', 19)``).

Module names follow the original so that ``drn-d-105_ms_cityscapes.pth`` loads with its own keys:
``base.<i>`` are the DRN's layer0..layer8 (the classifier's avgpool/fc dropped), ``seg`` is the
1x1 classifier to the 19 Cityscapes train ids, ``up`` the fixed bilinear x8 transposed conv.
Input: RGB in [0, 1] normalised with the Cityscapes mean/std of drn's ``info.json``.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn as nn

from .common import load_original_state_dict, Segmenter

# 19 Cityscapes train ids, indexed by labelId (0..33; our id 34 is the license plate, unscored).
CITYSCAPES_LABELID_TO_TRAINID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
                                 23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CITYSCAPES_TRAIN_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                            "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
                            "truck", "bus", "train", "motorcycle", "bicycle"]
DRN_CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
DRN_CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)
DRN_WEIGHTS_FILENAME = "drn-d-105_ms_cityscapes.pth"
DRN_WEIGHTS_PAGE = "http://go.yf.io/drn-cityscapes-models"


class DRNBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample=None, dilation=(1, 1)):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation[1], dilation=dilation[1],
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + res)


def _conv_layers(cin: int, cout: int, n: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    mods: List[nn.Module] = []
    for i in range(n):
        mods += [nn.Conv2d(cin if i == 0 else cout, cout, 3, stride=stride if i == 0 else 1,
                           padding=dilation, dilation=dilation, bias=False),
                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*mods)


def _res_layer(cin: int, planes: int, n: int, stride: int = 1, dilation: int = 1,
               new_level: bool = True) -> Tuple[nn.Sequential, int]:
    down = None
    if stride != 1 or cin != planes * 4:
        down = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride=stride, bias=False),
                             nn.BatchNorm2d(planes * 4))
    first = (1, 1) if dilation == 1 else (dilation // 2 if new_level else dilation, dilation)
    blocks = [DRNBottleneck(cin, planes, stride, down, dilation=first)]
    blocks += [DRNBottleneck(planes * 4, planes, dilation=(dilation, dilation)) for _ in range(1, n)]
    return nn.Sequential(*blocks), planes * 4


def drn_d_105_base() -> Tuple[nn.Sequential, int]:
    """layer0..layer8 of DRN-D-105: channels (16,32,64,128,256,512,512,512), blocks [1,1,3,4,23,3,1,1]."""
    ch = (16, 32, 64, 128, 256, 512, 512, 512)
    layer0 = nn.Sequential(nn.Conv2d(3, ch[0], 7, padding=3, bias=False), nn.BatchNorm2d(ch[0]), nn.ReLU(inplace=True))
    layer1 = _conv_layers(ch[0], ch[0], 1)
    layer2 = _conv_layers(ch[0], ch[1], 1, stride=2)
    layer3, c = _res_layer(ch[1], ch[2], 3, stride=2)
    layer4, c = _res_layer(c, ch[3], 4, stride=2)
    layer5, c = _res_layer(c, ch[4], 23, dilation=2, new_level=False)
    layer6, c = _res_layer(c, ch[5], 3, dilation=4, new_level=False)
    layer7 = _conv_layers(c, ch[6], 1, dilation=2)
    layer8 = _conv_layers(ch[6], ch[7], 1, dilation=1)
    return nn.Sequential(layer0, layer1, layer2, layer3, layer4, layer5, layer6, layer7, layer8), ch[7]


def _bilinear_up_weights(w: torch.Tensor) -> None:
    f = math.ceil(w.size(2) / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    k = torch.tensor([[(1 - abs(i / f - c)) * (1 - abs(j / f - c)) for j in range(w.size(3))]
                      for i in range(w.size(2))], dtype=w.dtype)
    w.copy_(k.expand_as(w))


class DRNSeg(nn.Module):
    """DRN-D-105 segmentation network; forward -> logits at 8x the feature resolution (= input)."""

    def __init__(self, classes: int = 19):
        super().__init__()
        self.base, out_dim = drn_d_105_base()
        self.seg = nn.Conv2d(out_dim, classes, 1, bias=True)
        self.up = nn.ConvTranspose2d(classes, classes, 16, stride=8, padding=4, output_padding=0,
                                     groups=classes, bias=False)
        with torch.no_grad():
            _bilinear_up_weights(self.up.weight)
        self.up.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.seg(self.base(x)))


def cityscapes_label_map(num_labels: int = 35) -> torch.Tensor:
    m = torch.full((num_labels,), -1, dtype=torch.long)
    for k, v in CITYSCAPES_LABELID_TO_TRAINID.items():
        if k < num_labels:
            m[k] = v
    return m


def drn_preprocess(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(DRN_CITYSCAPES_MEAN, device=x.device, dtype=x.dtype)[None, :, None, None]
    std = torch.tensor(DRN_CITYSCAPES_STD, device=x.device, dtype=x.dtype)[None, :, None, None]
    return ((x + 1) / 2 - mean) / std


def build_drn_segmenter(state=None, num_labels: int = 35, input_size=None, sha256=None) -> Segmenter:
    net = DRNSeg(19)
    if state is not None:
        load_original_state_dict(net, state, "DRN-D-105 Cityscapes weights")
    return Segmenter(net.eval(), 19, cityscapes_label_map(num_labels), "drn-d-105", drn_preprocess,
                     input_size=input_size, class_names=CITYSCAPES_TRAIN_CLASSES, weights_sha256=sha256)
