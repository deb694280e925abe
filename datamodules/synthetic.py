"""Synthetic data with known statistics (for the bundled demo and sampler tests)."""

from __future__ import annotations

import torch
from deepinv.physics import Physics
from torch.utils.data import DataLoader

from equireg_lit.datamodules.base import PredictDataModule
from equireg_lit.datamodules.mnist import TensorImageDataset
from equireg_lit.errors import ConfigError, check_range


class GaussianDataModule(PredictDataModule):
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
        predict_start: First image to predict.
        predict_limit: Number of images to predict (None: the rest).
        operator, measurement_seed, predictions_dir: Set by the CLI (see ``PredictDataModule``).
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
        predict_start: int = 0,
        predict_limit: int | None = None,
        operator: Physics | None = None,
        measurement_seed: int = 0,
        predictions_dir: str | None = None,
    ):
        super().__init__(batch_size, 0, predict_start, predict_limit, operator, measurement_seed, predictions_dir)
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

    train_dataloader = val_dataloader = test_dataloader = _loader

    def predict_source(self) -> TensorImageDataset:
        return self.dataset
