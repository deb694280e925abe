"""Candidate MPE functions f: small trainable probes and a timm backbone with spatial features."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from equireg_lit.errors import DataError
from equireg_lit.regularizer.functions import ManifoldFunction


class SmallCNN(ManifoldFunction):
    """Stride-1 conv stack returning a spatial feature map ``[B, out_channels, H, W]``.

    Args:
        in_channels: Image channels.
        width: Hidden channels.
        depth: Number of 3x3 conv layers.
        out_channels: Feature channels.
    """

    def __init__(self, in_channels: int = 1, width: int = 32, depth: int = 4, out_channels: int = 16):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(depth - 1):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.SiLU()]
            c = width
        layers.append(nn.Conv2d(c, out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SmallAutoencoder(ManifoldFunction):
    """Conv encoder (two stride-2 stages) and decoder back to image space, ``tanh`` output.

    Args:
        in_channels: Image channels.
        width: Channels of the first stage (doubled in the second).
        latent_channels: Channels of the bottleneck map (H/4 x W/4).
    """

    def __init__(self, in_channels: int = 1, width: int = 32, latent_channels: int = 8):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * width, latent_channels, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, 2 * width, 3, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(width, in_channels, 4, stride=2, padding=1),
        )
        self.out_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.decoder(self.encoder(x)))


class TimmFeatures(ManifoldFunction):
    """A timm backbone's spatial feature map (``features_only``), so the group can act on it.

    Args:
        model_name: timm model, e.g. ``resnet18``.
        in_chans: Image channels.
        out_index: Which feature level to return (timm ``out_indices``).
        pretrained_path: Local weights file for the backbone (timm's ``pretrained_cfg_overlay``
            file); None trains from scratch. Nothing is downloaded.
    """

    def __init__(self, model_name: str = "resnet18", in_chans: int = 1, out_index: int = 1, pretrained_path: str | None = None):
        super().__init__()
        import timm

        kwargs: dict = dict(features_only=True, in_chans=in_chans, out_indices=(out_index,))
        if pretrained_path is not None:
            if not Path(pretrained_path).is_file():
                raise DataError(
                    f"timm weights not found: {pretrained_path}. timm weights are never downloaded here; "
                    "pass a local file, or pretrained_path: null to train from scratch"
                )
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(pretrained_path)))
        self.backbone = timm.create_model(model_name, **kwargs)
        self.out_channels = self.backbone.feature_info.channels()[0]

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)[0]
