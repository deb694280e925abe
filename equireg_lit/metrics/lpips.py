"""LPIPS (AlexNet) from a local backbone file: torchmetrics' LPIPS downloads the torchvision
AlexNet weights at construction, which cannot happen here, so the backbone is built random and
filled from a local ``alexnet`` state dict (torchvision key names); the LPIPS linear heads are
the ones torchmetrics bundles.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from equireg_lit.weights import load_state_dict_file
from equireg_lit.errors import DataError

# torchvision alexnet.features indices held by each LPIPS slice (see torchmetrics Alexnet).
_ALEX_SLICES = {1: range(0, 2), 2: range(2, 5), 3: range(5, 8), 4: range(8, 10), 5: range(10, 12)}


class LocalLPIPS(nn.Module):
    """LPIPS distance for images in [-1, 1] (gray images are repeated to RGB).

    Args:
        backbone_weights: Local torchvision ``alexnet`` weights (e.g. ``alexnet-owt-7be5be79.pth``
            or a safetensors conversion).
    """

    def __init__(self, backbone_weights: str):
        super().__init__()
        from torchmetrics.functional.image.lpips import _LPIPS

        path = Path(backbone_weights)
        if not path.is_file():
            raise DataError(
                f"LPIPS backbone weights not found: {path}. LPIPS needs torchvision's AlexNet ImageNet "
                "weights as a local file (nothing is downloaded); omit lpips_weights to skip LPIPS."
            )
        self.lpips = _LPIPS(pretrained=True, net="alex", pnet_rand=True)
        state = load_state_dict_file(path)
        mapped = {}
        for slice_id, idx in _ALEX_SLICES.items():
            for i in idx:
                for p in ("weight", "bias"):
                    key = f"features.{i}.{p}"
                    if key in state:
                        mapped[f"slice{slice_id}.{i}.{p}"] = state[key]
        expected = self.lpips.net.state_dict()
        missing = [k for k in expected if k not in mapped]
        wrong = [k for k in expected if k in mapped and mapped[k].shape != expected[k].shape]
        if missing or wrong:
            raise ValueError(f"{path} is not a torchvision AlexNet state dict (missing {missing[:3]}, mis-shaped {wrong[:3]})")
        self.lpips.net.load_state_dict(mapped)
        self.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """Per-sample LPIPS of ``[B, C, H, W]`` pairs in [-1, 1]."""
        if a.shape[1] == 1:
            a, b = a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)
        return self.lpips(a.clamp(-1, 1), b.clamp(-1, 1)).flatten()
