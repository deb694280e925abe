"""Synthetic data with known statistics (for the bundled demo and sampler tests)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from equireg_lit.datamodules.mnist import TensorImageDataset


class GaussianDataModule(pl.LightningDataModule):
    """Images drawn i.i.d. from ``N(mean, std^2 I)``, matching ``GaussianPrior``; every stage
    (fit, validate, test, predict) uses the same seeded draws.

    Args:
        mean: Pixel mean.
        std: Pixel standard deviation.
        channels: Image channels.
        image_size: Side length.
        num_samples: Number of images.
        seed: Seed of the draws.
        batch_size: Batch size.
    """

    def __init__(
        self,
        mean: float = 0.0,
        std: float = 0.5,
        channels: int = 1,
        image_size: int = 8,
        num_samples: int = 16,
        seed: int = 0,
        batch_size: int = 8,
    ):
        super().__init__()
        self.mean, self.std = mean, std
        self.shape = (num_samples, channels, image_size, image_size)
        self.seed = seed
        self.batch_size = batch_size
        self.dataset: TensorImageDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(self.seed)
        self.dataset = TensorImageDataset(self.mean + self.std * torch.randn(self.shape, generator=g))

    def _loader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False)

    train_dataloader = val_dataloader = test_dataloader = predict_dataloader = _loader
