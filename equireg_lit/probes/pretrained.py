"""Load any module's weights from a shipped short name or a local path (for f in configs)."""

from __future__ import annotations

from torch import Tensor

from equireg_lit.regularizer.functions import ManifoldFunction
from equireg_lit.weights import load_checked, load_state_dict_file, resolve_weights


class Pretrained(ManifoldFunction):
    """``module`` with weights loaded (strictly, safely) from ``weights``; never a random init.

    Args:
        module: The architecture (e.g. ``equireg_lit.probes.SmallCNN`` with its sizes).
        weights: Shipped short name (``equireg_lit/weights/<name>.safetensors``) or a file path.
    """

    def __init__(self, module: ManifoldFunction, weights: str):
        super().__init__()
        path, _ = resolve_weights(weights)
        load_checked(module, load_state_dict_file(path), path)
        self.module = module.eval()
        self.out_channels = getattr(module, "out_channels", None)

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)
