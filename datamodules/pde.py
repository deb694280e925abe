"""PDE field datamodule: joint (a, u) samples, generated once and cached with provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from equireg_lit.data import TensorImageDataset
from equireg_lit.datamodules.base import SplitDataModule
from equireg_lit.errors import ConfigError
from equireg_lit.pde.data import PARAMS, Problem, field_metrics, generate_splits, load_pde_splits, pde_provenance


class PDEDataModule(SplitDataModule):
    """Joint two-channel fields ``(a, u)`` for Darcy, Poisson, Helmholtz or Navier-Stokes.

    Channels are normalized to zero mean and unit standard deviation with statistics of the
    train split (stored with the cache); ``metrics`` reports errors in physical units.

    Args:
        problem: ``darcy``, ``poisson``, ``helmholtz`` or ``navier_stokes``.
        resolution: Grid points per side (64 default; 128 supported).
        num_train: Training samples.
        num_val: Validation samples.
        num_test: Test samples.
        seed: Generation seed.
        layout: ``sequential`` draws train, val, test in that order from one stream (the shipped
            1,000-sample priors' data); ``nested`` draws test, then val, then train, so the test and
            validation sets do not depend on ``num_train`` and a smaller training set is a prefix
            of a larger one (priors trained on 1,000 and 10,000 pairs meet the same test set).
        cache_dir: Cache folder (rebuilt when seed, sizes, parameters or solver version change).
        batch_size: Batch size.
        **kwargs: Split and range to predict, workers (see ``SplitDataModule``).
    """

    def __init__(
        self,
        problem: Problem = "darcy",
        resolution: int = 64,
        num_train: int = 1000,
        num_val: int = 100,
        num_test: int = 100,
        seed: int = 0,
        layout: Literal["sequential", "nested"] = "sequential",
        cache_dir: str = "data_cache/pde",
        batch_size: int = 32,
        **kwargs,
    ):
        super().__init__(batch_size=batch_size, **kwargs)
        if problem not in PARAMS:
            raise ConfigError(f"unknown problem {problem!r}; valid: {', '.join(PARAMS)}")
        self.problem, self.resolution = problem, resolution
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        if layout not in ("sequential", "nested"):
            raise ConfigError(f"unknown layout {layout!r}; valid: sequential, nested")
        self.seed, self.layout, self.cache_dir = seed, layout, Path(cache_dir)
        self.mean = self.std = None

    def provenance(self) -> dict:
        return pde_provenance(self.problem, self.resolution, self.sizes, self.seed, self.layout)

    def load_or_generate(self) -> dict[str, Tensor]:
        """The splits and train statistics, from the cache or generated (then cached)."""
        return load_pde_splits(self.problem, self.resolution, self.sizes, self.seed, self.layout, str(self.cache_dir))

    def _generate_splits(self) -> dict[str, Tensor]:
        return generate_splits(self.problem, self.resolution, self.sizes, self.seed, self.layout)

    def load_splits(self) -> dict[str, TensorImageDataset]:
        data = self.load_or_generate()
        self.mean, self.std = data["mean"], data["std"]
        return {split: TensorImageDataset(self.normalize(data[split])) for split in self.sizes}

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean.view(1, -1, 1, 1).to(x)) / self.std.view(1, -1, 1, 1).to(x)

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.std.view(1, -1, 1, 1).to(x) + self.mean.view(1, -1, 1, 1).to(x)

    def metrics(self, recon: Tensor, truth: Tensor) -> dict[str, float]:
        """Relative L2 of each channel in physical units (and the Darcy coefficient error rate)."""
        return field_metrics(recon, truth, self.mean, self.std, self.problem)

    def predict_source(self) -> TensorImageDataset:
        # The statistics travel with the batches: PDE-residual guidance works in physical units.
        split = self.splits[self.predict_split]
        problem_id = torch.tensor(list(PARAMS).index(self.problem))
        return TensorImageDataset(split.images, extras={"field_mean": self.mean, "field_std": self.std,
                                                        "field_problem": problem_id})
