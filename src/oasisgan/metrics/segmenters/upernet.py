"""UperNet-ResNet101 for ADE20K (CSAILVision/semantic-segmentation-pytorch, ``ade20k-resnet101-upernet``).

Two weight files, each with its original keys: ``encoder_epoch_50.pth`` (the repository's own
deep-stem ResNet-101 without avgpool/fc: ``conv1..bn3``, ``layer1..layer4``) and
``decoder_epoch_50.pth`` (UPerNet head, fpn_dim 512: ``ppm_conv``, ``ppm_last_conv``, ``fpn_in``,
``fpn_out``, ``conv_last``). Here they are the ``encoder`` and ``decoder`` submodules.
150 classes = ADE20K ids 1..150 (our id k is class k-1; id 0 "other" is not scored).
Input: RGB in [0, 1] with ImageNet mean/std.
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import imagenet_preprocess, load_original_state_dict, Segmenter, shifted_label_map
from .drn import DRNBottleneck as Bottleneck  # the same ResNet bottleneck (dilation 1)

UPERNET_URL_ROOT = "http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet101-upernet/"
UPERNET_ENCODER_FILENAME = "encoder_epoch_50.pth"
UPERNET_DECODER_FILENAME = "decoder_epoch_50.pth"


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class ResNetEncoder(nn.Module):
    """CSAIL's ResNet-101 (three 3x3 stem convs, 128 channels into layer1); returns C2..C5."""

    def __init__(self, layers=(3, 4, 23, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.inplanes = 128
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)

    def _make_layer(self, planes: int, n: int, stride: int = 1) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes * 4:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                                 nn.BatchNorm2d(planes * 4))
        blocks = [Bottleneck(self.inplanes, planes, stride, down)]
        self.inplanes = planes * 4
        blocks += [Bottleneck(self.inplanes, planes) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    def forward(self, x) -> List[torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        out = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            out.append(x)
        return out


class UPerNetHead(nn.Module):
    def __init__(self, num_class: int = 150, fc_dim: int = 2048, pool_scales=(1, 2, 3, 6),
                 fpn_inplanes=(256, 512, 1024, 2048), fpn_dim: int = 512):
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        self.ppm_conv = nn.ModuleList(
            nn.Sequential(nn.Conv2d(fc_dim, 512, 1, bias=False), nn.BatchNorm2d(512), nn.ReLU(inplace=True))
            for _ in pool_scales)
        self.ppm_last_conv = _conv_bn_relu(fc_dim + len(pool_scales) * 512, fpn_dim)
        self.fpn_in = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, fpn_dim, 1, bias=False), nn.BatchNorm2d(fpn_dim), nn.ReLU(inplace=True))
            for c in fpn_inplanes[:-1])
        self.fpn_out = nn.ModuleList(nn.Sequential(_conv_bn_relu(fpn_dim, fpn_dim))
                                     for _ in fpn_inplanes[:-1])
        self.conv_last = nn.Sequential(_conv_bn_relu(len(fpn_inplanes) * fpn_dim, fpn_dim),
                                       nn.Conv2d(fpn_dim, num_class, 1))

    def forward(self, feats: List[torch.Tensor]) -> torch.Tensor:
        c5 = feats[-1]
        size = c5.shape[2:]
        ppm = [c5] + [conv(F.interpolate(F.adaptive_avg_pool2d(c5, s), size, mode="bilinear", align_corners=False))
                      for s, conv in zip(self.pool_scales, self.ppm_conv)]
        f = self.ppm_last_conv(torch.cat(ppm, 1))
        pyramid = [f]
        for i in reversed(range(len(feats) - 1)):
            lateral = self.fpn_in[i](feats[i])
            f = lateral + F.interpolate(f, size=lateral.shape[2:], mode="bilinear", align_corners=False)
            pyramid.append(self.fpn_out[i](f))
        pyramid.reverse()
        out_size = pyramid[0].shape[2:]
        fused = [pyramid[0]] + [F.interpolate(p, out_size, mode="bilinear", align_corners=False)
                                for p in pyramid[1:]]
        return self.conv_last(torch.cat(fused, 1))


class UperNetResNet101(nn.Module):
    """forward(x normalised) -> logits (B, 150, H/4, W/4)."""

    def __init__(self, num_class: int = 150):
        super().__init__()
        self.encoder = ResNetEncoder()
        self.decoder = UPerNetHead(num_class)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def build_upernet_segmenter(encoder_state=None, decoder_state=None, num_labels: int = 151,
                            input_size=None, sha256=None, class_names=None) -> Segmenter:
    net = UperNetResNet101(150)
    if encoder_state is not None:
        load_original_state_dict(net.encoder, encoder_state, "UperNet-ResNet101 encoder weights")
    if decoder_state is not None:
        load_original_state_dict(net.decoder, decoder_state, "UperNet-ResNet101 decoder weights")
    names = list(class_names[1:151]) if class_names is not None and len(class_names) >= 151 else None
    return Segmenter(net.eval(), 150, shifted_label_map(num_labels, 150), "upernet-resnet101",
                     imagenet_preprocess, input_size=input_size, class_names=names, weights_sha256=sha256)
