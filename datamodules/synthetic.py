"""Synthetic data with known statistics (for the bundled demo and sampler tests)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from equireg_lit.datamodules.base import PredictDataModule
from equireg_lit.datamodules.resumable import ResumableLoader
from equireg_lit.data import TensorImageDataset
from equireg_lit.errors import ConfigError, check_range


class GaussianDataModule(PredictDataModule):
    """Images drawn i.i.d. from ``N(mean, std^2 I)``, matching ``GaussianPrior``; every stage
    (fit, validate, test, predict) uses the same seeded draws (shuffled for training).

    Args:
        mean: Pixel mean.
        std: Pixel standard deviation.
        channels: Image channels.
        image_size: Side length.
        num_samples: Number of images.
        seed: Seed of the draws.
        **kwargs: Batch size, range to predict (see ``PredictDataModule``).
    """

    def __init__(self, mean: float = 0.0, std: float = 0.5, channels: int = 1, image_size: int = 8,
                 num_samples: int = 16, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        check_range("std", std, 0.0, low_open=True)
        if num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        self.mean, self.std = mean, std
        self.shape = (num_samples, channels, image_size, image_size)
        self.seed = seed
        self.dataset: TensorImageDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(self.seed)
        self.dataset = TensorImageDataset(self.mean + self.std * torch.randn(self.shape, generator=g))

    def _loader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False)

    def train_dataloader(self) -> DataLoader:
        return ResumableLoader(self.dataset, batch_size=self.batch_size, shuffle=True)

    val_dataloader = test_dataloader = _loader

    def predict_source(self) -> TensorImageDataset:
        return self.dataset
