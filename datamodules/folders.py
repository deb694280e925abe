"""Folder-based datamodules: image folders (FFHQ/ImageNet style) and measurement folders."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _list_images(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no PNG/JPEG images under {root}")
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

    def __getitem__(self, i: int) -> dict:
        from PIL import Image

        with Image.open(self.files[i]) as im:
            x = self.transform(im.convert(self.mode))
        return {"image": x * 2 - 1, "index": i}


class ImageFolderDataModule(pl.LightningDataModule):
    """A folder of PNG/JPEG images (e.g. FFHQ 256): sorted file list, seeded validation split.

    Args:
        root: Folder searched recursively for images.
        image_size: Side length after resize and center crop.
        channels: 3 (RGB) or 1 (grayscale).
        val_fraction: Fraction of files held out for validation in ``fit``.
        batch_size: Batch size.
        num_workers: DataLoader workers.
        predict_start: First file index to predict.
        predict_limit: Number of files to predict (None: all from ``predict_start``).
    """

    def __init__(
        self,
        root: str,
        image_size: int = 256,
        channels: Literal[1, 3] = 3,
        val_fraction: float = 0.05,
        batch_size: int = 8,
        num_workers: int = 0,
        predict_start: int = 0,
        predict_limit: int | None = None,
    ):
        super().__init__()
        self.root, self.image_size, self.channels = root, image_size, channels
        self.val_fraction = val_fraction
        self.batch_size, self.num_workers = batch_size, num_workers
        self.predict_start, self.predict_limit = predict_start, predict_limit
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

    def predict_dataloader(self) -> DataLoader:
        stop = len(self.dataset) if self.predict_limit is None else min(len(self.dataset), self.predict_start + self.predict_limit)
        return self._loader(Subset(self.dataset, list(range(self.predict_start, stop))))

    test_dataloader = predict_dataloader


class MeasurementDataset(Dataset):
    """``NNNNN.safetensors`` files holding a measurement ``y``; the index is the file's number."""

    def __init__(self, root: str | Path):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"measurement folder not found: {root}")
        self.files = sorted(p for p in root.glob("*.safetensors") if p.stem.isdigit())
        if not self.files:
            raise FileNotFoundError(f"no NNNNN.safetensors measurement files (key 'y') in {root}")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        from safetensors.torch import load_file

        d = load_file(str(self.files[i]))
        if "y" not in d:
            raise KeyError(f"{self.files[i]} has no tensor 'y' (found {sorted(d)})")
        y: Tensor = d["y"]
        return {"y": y, "index": int(self.files[i].stem)}


class MeasurementDataModule(pl.LightningDataModule):
    """Real measurements for ``mode: measurement``: a folder of ``NNNNN.safetensors`` files with
    key ``y`` (one measurement each, without batch axis). The operator's parameters (mask, kernel)
    come from the operator's config, e.g. ``MaskInpainting(mask_path=...)``.

    Args:
        root: Folder with the measurement files.
        batch_size: Batch size.
    """

    def __init__(self, root: str, batch_size: int = 8):
        super().__init__()
        self.root, self.batch_size = root, batch_size
        self.dataset: MeasurementDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        self.dataset = MeasurementDataset(self.root)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False)
