"""On/off-manifold sample sets for probes (generated once, cached with provenance)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from equireg_lit.datamodules.resumable import ResumableLoader
from equireg_lit.probes.sets import load_or_build_probe_sets, probe_set_provenance


class _ZipDataset(Dataset):
    """Item ``i`` is ``{key: tensor[i mod len(tensor)]}``; its length is the first tensor's, so
    on-manifold item ``i`` meets off-manifold item ``i mod n_off`` (for separation objectives)."""

    def __init__(self, **tensors: torch.Tensor):
        self.tensors = tensors

    def __len__(self) -> int:
        return next(iter(self.tensors.values())).shape[0]

    def __getitem__(self, i: int) -> dict:
        return {k: v[i % v.shape[0]] for k, v in self.tensors.items()}


class ProbeSetsDataModule(pl.LightningDataModule):
    """Train: training digits paired with off-manifold samples (every "train" source, shuffled).
    Validate: validation digits paired with a held-out fifth of those. Test: held-out test digits,
    prior samples and every "eval" off-manifold source, labelled by source for the selection report.

    Args:
        prior_weights: Prior whose DPS trajectories and samples build the sets.
        dataset: Whose data: ``mnist32`` (digits) or ``natural32`` (patches).
        cache_dir: Where the generated sets are cached (rebuilt when the provenance changes).
        steps: DPS steps of the trajectories.
        zeta: DPS guidance weight of the trajectories.
        num_traj_train: Train-split digits whose trajectories train probes (per task).
        num_traj_eval: Other train-split digits whose trajectories select probes (per task).
        num_on_train: Training digits used as on-manifold samples.
        num_prior_samples: Prior samples (a separate on-manifold set).
        seed: Seed of every random choice.
        batch_size: Batch size.
    """

    def __init__(self, prior_weights: str = "mnist32", cache_dir: str = "data_cache/probe_sets", steps: int = 50,
                 zeta: float = 1.0, num_traj_train: int = 150, num_traj_eval: int = 100, num_on_train: int = 2000,
                 num_prior_samples: int = 200, seed: int = 0, batch_size: int = 64, dataset: str = "mnist32"):
        super().__init__()
        self.save_hyperparameters(logger=False)  # checked by --ckpt_path last (see PredictDataModule)
        self.cache_dir = cache_dir
        self.prov_args = dict(prior_weights=prior_weights, steps=steps, zeta=zeta, num_traj_train=num_traj_train,
                              num_traj_eval=num_traj_eval, num_on_train=num_on_train,
                              num_prior_samples=num_prior_samples, seed=seed, dataset=dataset)
        self.batch_size = batch_size
        self.sets: dict[str, torch.Tensor] = {}
        self.source_names: list[str] = []

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        self.sets = load_or_build_probe_sets(self.cache_dir, probe_set_provenance(**self.prov_args))
        off = torch.cat([v for k, v in sorted(self.sets.items()) if k.startswith("off_train_")])
        off = off[torch.randperm(off.shape[0], generator=torch.Generator().manual_seed(0))]
        cut = int(0.8 * off.shape[0])
        self.off_fit, self.off_val = off[:cut], off[cut:]
        # The selection's on-manifold reference: validation samples (``on_eval``), or MNIST's test digits.
        names = ["on_eval" if "on_eval" in self.sets else "on_test", "on_prior"] + sorted(
            k for k in self.sets if k.startswith("off_eval_"))
        self.source_names = names
        self.test_images = torch.cat([self.sets[n] for n in names])
        self.test_sources = torch.cat([torch.full((self.sets[n].shape[0],), i) for i, n in enumerate(names)])

    def train_dataloader(self) -> DataLoader:
        return ResumableLoader(_ZipDataset(image=self.sets["on_train"], off=self.off_fit), batch_size=self.batch_size,
                               shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_ZipDataset(image=self.sets["on_val"], off=self.off_val), batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(_ZipDataset(image=self.test_images, source=self.test_sources), batch_size=self.batch_size)
