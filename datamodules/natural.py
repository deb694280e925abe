"""Natural-image patches (``natural32``): a test bed whose data is flip-symmetric."""

from __future__ import annotations

from deepinv.physics import Physics

from equireg_lit.data.natural import build_natural32, natural32_provenance
from equireg_lit.datamodules.mnist import Split, TensorImageDataset, _ImageDataModule
from equireg_lit.utils.io import cached_tensors


class Natural32DataModule(_ImageDataModule):
    """32x32 grayscale patches of scikit-image's bundled photographs and textures in [-1, 1],
    split by source image (``equireg_lit.data.natural.SOURCES``), generated once and cached.

    Args:
        cache_dir: Cache folder (rebuilt when the provenance changes).
        seed: Seed of the patch positions.
        batch_size: Batch size of every loader.
        num_workers: DataLoader workers.
        predict_split: Split that ``predict`` reconstructs.
        predict_start: First index (within the split) to predict.
        predict_limit: Number of patches to predict (None: the rest of the split).
        operator, measurement_seed, predictions_dir: Set by the CLI (see ``PredictDataModule``).
    """

    def __init__(
        self,
        cache_dir: str = "data_cache/natural32",
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        predict_split: Split = "test",
        predict_start: int = 0,
        predict_limit: int | None = None,
        operator: Physics | None = None,
        measurement_seed: int = 0,
        predictions_dir: str | None = None,
    ):
        super().__init__(batch_size, num_workers, predict_split, predict_start, predict_limit, operator,
                         measurement_seed, predictions_dir)
        self.cache_dir, self.seed = cache_dir, seed

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        data = cached_tensors(self.cache_dir, "natural32", natural32_provenance(self.seed),
                              lambda: build_natural32(self.seed))
        for split in ("train", "val", "test"):
            self.splits[split] = TensorImageDataset(data[split], data[f"{split}_source"])
