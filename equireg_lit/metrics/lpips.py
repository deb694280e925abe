"""LPIPS (AlexNet) through torchmetrics' public ``LearnedPerceptualImagePatchSimilarity``.

torchmetrics builds torchvision's ImageNet AlexNet, which torchvision loads from the torch hub
cache when the file is there and downloads otherwise. Nothing may download at run time, so LPIPS
is used only when ``<torch hub dir>/checkpoints/alexnet-owt-7be5be79.pth`` exists (``TORCH_HOME``
moves the hub dir; the Docker image mounts it as a volume); otherwise one line says how to add it.
The LPIPS linear heads ship with torchmetrics.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
log = logging.getLogger(__name__)


def alexnet_cache_path() -> Path:
    """Where torchvision looks for its ImageNet AlexNet weights before downloading them."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


class LPIPS(nn.Module):
    """Per-sample LPIPS distance of images in [-1, 1] (gray images are repeated to RGB)."""

    def __init__(self) -> None:
        super().__init__()
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        self.metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", reduction="none").eval()

    @torch.no_grad()
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """``[B]`` distances of ``[B, C, H, W]`` pairs."""
        if a.shape[1] == 1:
            a, b = a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)
        return self.metric(a.clamp(-1, 1).float(), b.clamp(-1, 1).float()).flatten()


def load_lpips() -> LPIPS | None:
    """LPIPS when its backbone is in the torch hub cache; else None and one line saying where to put it."""
    path = alexnet_cache_path()
    if not path.is_file():
        log.warning("LPIPS skipped: torchvision's AlexNet weights are not at %s (nothing is downloaded); "
                    "fetch %s there (or point TORCH_HOME at a folder holding hub/checkpoints/%s)",
                    path, ALEXNET_URL, ALEXNET_FILE)
        return None
    return LPIPS()
