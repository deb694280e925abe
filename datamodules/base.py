"""The shared base of every datamodule that feeds ``equireg predict``.

Data flows one way: the datamodule yields measurements ``y`` (simulated from ground truth with
per-sample seeded noise, or read from files) in fixed batches and leaves out batches finished
earlier; the model samples; the writer writes. The CLI links the operator and seed from the model
and the predictions folder from ``trainer.default_root_dir``, so none of them is set twice.
"""

from __future__ import annotations

import sys

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from equireg_lit.data import PredictionFolder, PredictionSet, Split
from equireg_lit.data.prediction import dataset_indices
from equireg_lit.datamodules.resumable import ResumableLoader
from equireg_lit.errors import ConfigError
from equireg_lit.physics import TaskOperator


@rank_zero_only
def warn_user(line: str) -> None:
    """One warning line on the console (not through ``warnings``, which tools may silence)."""
    print(f"equireg: warning: {line}", file=sys.stderr, flush=True)


class DealtBatches(DistributedSampler):
    """Deals the fixed batches round-robin to the processes, without padding (a process may get
    none, e.g. when a resumed run has one batch left). Lightning's own predict sampler refuses a
    process without items, and it leaves any ``DistributedSampler`` as it is."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))


class IndexedSubset(Dataset):
    """Positions ``positions`` of ``source``, keeping the source's dataset indices."""

    def __init__(self, source: Dataset, positions: list[int]):
        self.source, self.positions = source, positions
        all_indices = dataset_indices(source)
        self.indices = [all_indices[p] for p in positions]

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> dict:
        return self.source[self.positions[i]]


class PredictDataModule(pl.LightningDataModule):
    """Fixed prediction batches of ``predict_source()`` with measurements and resume.

    Args:
        batch_size: Samples per batch.
        num_workers: DataLoader workers.
        predict_start: First position (within the predicted split) to predict.
        predict_limit: Number of samples to predict (None: the rest).
        operator: Forward operator that simulates ``y`` from ground truth (linked from the
            model's ``operator`` by the CLI).
        measurement_seed: Seed of the measurement noise (linked from the model's ``seed``).
        predictions_dir: Predictions folder whose finished samples are left out (linked from
            ``trainer.default_root_dir`` by the CLI).
    """

    def __init__(
        self,
        batch_size: int = 8,
        num_workers: int = 0,
        predict_start: int = 0,
        predict_limit: int | None = None,
        operator: TaskOperator | None = None,
        measurement_seed: int = 0,
        predictions_dir: str | None = None,
    ):
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
        if predict_start < 0:
            raise ConfigError(f"predict_start must be >= 0, got {predict_start}")
        if predict_limit is not None and predict_limit < 0:
            raise ConfigError(f"predict_limit must be >= 0 (or null for the rest of the split), got {predict_limit}")
        # In every checkpoint (Lightning's "datamodule_hyper_parameters"), so ``--ckpt_path last``
        # refuses to continue a fit on other data; the CLI links the last three per run.
        self.save_hyperparameters(ignore=["operator", "measurement_seed", "predictions_dir"], logger=False)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.predict_start, self.predict_limit = predict_start, predict_limit
        self.operator, self.measurement_seed, self.predictions_dir = operator, measurement_seed, predictions_dir
        # A resumed run may leave a process without a batch (see DealtBatches); Lightning's flag.
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def predict_source(self) -> Dataset:  # pragma: no cover - abstract
        """Every item ``predict`` may reconstruct (``{"image" | "y", "index", ["label"]}``), with ``indices``."""
        raise NotImplementedError

    def predict_selection(self) -> IndexedSubset:
        """The items of ``predict_start .. predict_start + predict_limit``, checked against the data."""
        source = self.predict_source()
        n = len(source)
        if self.predict_start >= n and n > 0:
            raise ConfigError(
                f"predict_start {self.predict_start} is beyond the {n} samples to predict from; valid: 0..{n - 1}"
            )
        stop = n if self.predict_limit is None else min(n, self.predict_start + self.predict_limit)
        return IndexedSubset(source, list(range(self.predict_start, stop)))

    def finished_samples(self) -> set[int]:
        """Samples finished in ``predictions_dir``, as process 0 sees them (every process agrees)."""
        finished: set[int] = set()
        if self.predictions_dir is not None:
            records, problems = PredictionFolder(self.predictions_dir).scan()
            finished = set(records)
            for line in problems:
                warn_user(line)
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            finished = trainer.strategy.broadcast(finished, src=0)
        return finished

    def predict_dataloader(self) -> DataLoader:
        selection = self.predict_selection()
        finished = self.finished_samples()
        data = PredictionSet(selection, self.batch_size, self.operator, self.measurement_seed, finished)
        done = len(finished & set(selection.indices))
        if done:
            rank_zero_info(
                f"Resuming: {done} of {data.num_samples} samples are finished in {self.predictions_dir} and kept; "
                f"{len(data)} batch(es) left (--overwrite true redoes all)"
            )
        trainer = self.trainer
        sampler = DealtBatches(data, trainer.world_size, trainer.global_rank) if trainer and trainer.world_size > 1 else None
        # batch_size=None: every item is a whole, fixed batch (see PredictionSet).
        return DataLoader(data, batch_size=None, sampler=sampler, num_workers=self.num_workers)


class SplitDataModule(PredictDataModule):
    """Train / val / test splits held in memory, a loader for each, and ``predict`` over one split.
    Subclasses build the splits in :meth:`load_splits` (from ``equireg_lit.data`` builders and caches).

    Args:
        predict_split: Split that ``predict`` reconstructs (``test`` for reported results, ``val``
            for tuning).
        batch_size: Batch size of every loader.
        **kwargs: Workers, the predicted range and the CLI-linked settings (see ``PredictDataModule``).
    """

    def __init__(self, predict_split: Split = "test", batch_size: int = 64, **kwargs):
        super().__init__(batch_size=batch_size, **kwargs)
        self.predict_split = predict_split
        self.splits: dict[str, Dataset] = {}

    def load_splits(self) -> dict[str, Dataset]:  # pragma: no cover - abstract
        """``{"train": ..., "val": ..., "test": ...}``."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.load_splits()

    def _loader(self, split: str) -> DataLoader:
        return DataLoader(self.splits[split], batch_size=self.batch_size, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        # Shuffled, and resumable mid-epoch (see ResumableLoader).
        return ResumableLoader(self.splits["train"], batch_size=self.batch_size, shuffle=True,
                               num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_source(self) -> Dataset:
        return self.splits[self.predict_split]
