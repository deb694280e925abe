"""Natural-image patches (``natural32``): a test bed whose data is flip-symmetric."""

from __future__ import annotations

from equireg_lit.data import TensorImageDataset
from equireg_lit.data.natural import natural32
from equireg_lit.datamodules.base import SplitDataModule


class Natural32DataModule(SplitDataModule):
    """32x32 grayscale patches of scikit-image's bundled photographs and textures in [-1, 1],
    split by source image (``equireg_lit.data.natural.SOURCES``), generated once and cached.

    Args:
        cache_dir: Cache folder (rebuilt when the provenance changes).
        seed: Seed of the patch positions.
        **kwargs: Batching, split and range to predict (see ``SplitDataModule``).
    """

    def __init__(self, cache_dir: str = "data_cache/natural32", seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.cache_dir, self.seed = cache_dir, seed

    def load_splits(self) -> dict[str, TensorImageDataset]:
        data = natural32(self.cache_dir, self.seed)
        return {split: TensorImageDataset(data[split], data[f"{split}_source"]) for split in ("train", "val", "test")}
