"""Folder-based datamodules: image folders (FFHQ/ImageNet style) and measurement folders."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from equireg_lit.data import read_measurement
from equireg_lit.data.prediction import IMAGE_SUFFIXES
from equireg_lit.datamodules.base import PredictDataModule
from equireg_lit.datamodules.resumable import ResumableLoader
from equireg_lit.errors import ConfigError, DataError


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

    def _loader(self, ds: Dataset) -> DataLoader:
        return DataLoader(ds, batch_size=self.batch_size, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return ResumableLoader(Subset(self.dataset, self.train_idx), batch_size=self.batch_size, shuffle=True,
                               num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._loader(Subset(self.dataset, self.val_idx))

    def predict_source(self) -> ImageFolderDataset:
        return self.dataset

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.predict_selection())


class MeasurementDataset(Dataset):
    """Measurement files, one sample each: ``NNNNN.safetensors`` (key ``y``, any shape) or images
    (PNG/JPEG: a photo with a hole, a blurred or a low-resolution photo). The index is the number
    in the file name when every name is a number, else the position in sorted name order.

    Every file is checked when the dataset is built (readable, finite, one shape for all), so a
    bad file is named before any sampling.

    Args:
        root: The folder.
        channels: Channels an image is converted to (the operator's).
        from_image: Turns an image into the operator's measurement (e.g. inpainting masks it:
            ``TaskOperator.measurement_from_image``).
    """

    def __init__(self, root: str | Path, channels: int | None = None,
                 from_image: Callable[[torch.Tensor], torch.Tensor] | None = None):
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"measurement folder not found: {root}; check root")
        self.channels, self.from_image = channels, from_image
        self.files = sorted(p for p in root.iterdir()
                            if p.suffix == ".safetensors" and p.stem.isdigit() or p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise DataError(f"no measurement files in {root}: NNNNN.safetensors (key 'y') or PNG/JPEG images")
        numbered = all(p.stem.isdigit() for p in self.files)
        self.file_indices = [int(p.stem) if numbered else i for i, p in enumerate(self.files)]
        if len(set(self.file_indices)) < len(self.files):
            raise DataError(f"two measurement files in {root} have the same number; rename one")
        shapes: dict[tuple, Path] = {}
        for i in range(len(self.files)):
            shapes.setdefault(tuple(self[i]["y"].shape), self.files[i])
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
        return self.file_indices

    def __getitem__(self, i: int) -> dict:
        path = self.files[i]
        y = read_measurement(path, self.channels)
        if path.suffix != ".safetensors" and self.from_image is not None:
            with torch.no_grad():
                y = self.from_image(y[None])[0]
        return {"y": y, "index": self.file_indices[i]}


class MeasurementDataModule(PredictDataModule):
    """Real measurements for ``mode: measurement``: a folder of measurement files, one sample each:
    images (PNG/JPEG, for image-valued measurements: inpainting, super-resolution, blurs, HDR) or
    ``NNNNN.safetensors`` with key ``y`` (any measurement, without batch axis). The operator's
    parameters (mask, kernel) come from the operator's config, e.g.
    ``MaskInpainting(mask_path=...)``, ``KernelBlur(kernel_path=...)``.

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
            op = self.operator
            channels = tuple(op.img_size_chw)[0] if op is not None and hasattr(op, "img_size_chw") else None
            self.dataset = MeasurementDataset(self.root, channels, getattr(op, "measurement_from_image", None))

    def predict_source(self) -> MeasurementDataset:
        return self.dataset
