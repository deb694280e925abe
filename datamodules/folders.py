"""Folder-based datamodules: image folders (FFHQ/ImageNet style) and measurement folders."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from equireg_lit.data import read_measurement
from equireg_lit.datamodules.base import PredictDataModule
from equireg_lit.errors import ConfigError, DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _list_images(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}; check root")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no PNG/JPEG images under {root}; check root")
    return files


class ImageFolderDataset(Dataset):
    """Images resized (shorter side) and center-cropped to ``image_size``, in [-1, 1]."""

    def __init__(self, files: list[Path], image_size: int, channels: int):
        from torchvision import transforms

        self.files = files
        self.mode = "L" if channels == 1 else "RGB"
        self.transform = transforms.Compose([
            transforms.Resize(image_size, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
        ])

    def __len__(self) -> int:
        return len(self.files)

    @property
    def indices(self) -> range:
        return range(len(self.files))

    def __getitem__(self, i: int) -> dict:
        from PIL import Image

        with Image.open(self.files[i]) as im:
            x = self.transform(im.convert(self.mode))
        return {"image": x * 2 - 1, "index": i}


class ImageFolderDataModule(PredictDataModule):
    """A folder of PNG/JPEG images (e.g. FFHQ 256): sorted file list, seeded validation split.

    Args:
        root: Folder searched recursively for images.
        image_size: Side length after resize and center crop.
        channels: 3 (RGB) or 1 (grayscale).
        val_fraction: Fraction of files held out for validation in ``fit``.
        **kwargs: Batch size, workers, the files to predict (``predict_start`` / ``predict_limit``
            in sorted order; see ``PredictDataModule``).
    """

    def __init__(
        self,
        root: str,
        image_size: int = 256,
        channels: Literal[1, 3] = 3,
        val_fraction: float = 0.05,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.root, self.image_size, self.channels = root, image_size, channels
        self.val_fraction = val_fraction
        self.dataset: ImageFolderDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        self.dataset = ImageFolderDataset(_list_images(self.root), self.image_size, self.channels)
        n = len(self.dataset)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
        n_val = max(1, int(round(self.val_fraction * n))) if n > 1 else 0
        self.val_idx, self.train_idx = perm[:n_val], perm[n_val:]

    def _loader(self, ds: Dataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(Subset(self.dataset, self.train_idx), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(Subset(self.dataset, self.val_idx))

    def predict_source(self) -> ImageFolderDataset:
        return self.dataset

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.predict_selection())


class MeasurementDataset(Dataset):
    """``NNNNN.safetensors`` files holding a measurement ``y``; the index is the file's number.

    Every file is checked when the dataset is built (readable safetensors, key ``y``, finite
    values, one shape for all), so a bad file is named before any sampling.
    """

    def __init__(self, root: str | Path):
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"measurement folder not found: {root}; check root")
        self.files = sorted(p for p in root.glob("*.safetensors") if p.stem.isdigit())
        if not self.files:
            raise DataError(f"no NNNNN.safetensors measurement files (key 'y') in {root}")
        shapes: dict[tuple, Path] = {}
        for path in self.files:
            shapes.setdefault(tuple(read_measurement(path).shape), path)
        if len(shapes) > 1:
            (s0, f0), (s1, f1) = list(shapes.items())[:2]
            raise DataError(
                f"measurement files differ in shape: {f0} has {list(s0)}, {f1} has {list(s1)}; "
                "one run takes measurements of one operator (split the folder)"
            )

    def __len__(self) -> int:
        return len(self.files)

    @property
    def indices(self) -> list[int]:
        return [int(p.stem) for p in self.files]

    def __getitem__(self, i: int) -> dict:
        return {"y": read_measurement(self.files[i]), "index": int(self.files[i].stem)}


class MeasurementDataModule(PredictDataModule):
    """Real measurements for ``mode: measurement``: a folder of ``NNNNN.safetensors`` files with
    key ``y`` (one measurement each, without batch axis). The operator's parameters (mask, kernel)
    come from the operator's config, e.g. ``MaskInpainting(mask_path=...)``.

    Args:
        root: Folder with the measurement files.
        **kwargs: Batch size, the files to predict (``predict_start`` / ``predict_limit`` in
            sorted order; see ``PredictDataModule``).
    """

    def __init__(
        self,
        root: str,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.root = root
        self.dataset: MeasurementDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset = MeasurementDataset(self.root)

    def predict_source(self) -> MeasurementDataset:
        return self.dataset
