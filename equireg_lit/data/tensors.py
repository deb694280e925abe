"""In-memory image (or field) datasets in the shape every datamodule and the prediction set use."""

from __future__ import annotations

from typing import Literal

from torch import Tensor
from torch.utils.data import Dataset

Split = Literal["train", "val", "test"]


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
