"""What ``predict`` consumes: fixed batches of measurements, simulated or read from files.

Batches are formed once, from consecutive items of the prediction range, and never change: a
resumed run recomputes a partly finished batch whole (and writes only its missing samples), and
a different number of processes only changes which process gets which batch. Together with the
per-sample generators (:mod:`equireg_lit.rng`) this makes results bit-identical across
interruptions, and independent of the process count up to floating point (see docs/scale.md).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from equireg_lit.errors import DataError
from equireg_lit.physics.noise import simulate
from equireg_lit.rng import STREAM_MEASUREMENT, sample_generators
from equireg_lit.utils.io import read_safetensors


def dataset_indices(source: Dataset) -> list[int]:
    """Dataset index of every position of ``source`` (its ``indices`` attribute, else positions)."""
    indices = getattr(source, "indices", None)
    return list(range(len(source))) if indices is None else [int(i) for i in indices]


def collate(items: list[dict]) -> dict:
    """Stack tensors and numbers of a list of item dicts into one batch dict."""
    out: dict = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        out[key] = torch.stack(vals) if isinstance(vals[0], Tensor) else torch.as_tensor(vals)
    return out


class PredictionSet(Dataset):
    """Fixed batches of ``batch_size`` consecutive items of ``source``; each item is a whole batch
    ``{"index", "y", ["truth"], ["label"]}``.

    Items of ``source`` carry ``index`` and either ground truth ``image`` (benchmark mode: ``y`` is
    simulated with ``physics`` and noise seeded by ``(seed, index)``) or a measurement ``y``.
    Batches whose every sample is in ``exclude`` (finished earlier) are left out.

    Args:
        source: Dataset of item dicts, with an ``indices`` attribute listing their dataset indices.
        batch_size: Samples per batch.
        physics: Forward operator used to simulate ``y`` from ``image`` (None: items carry ``y``).
        seed: Base seed of the measurement noise.
        exclude: Dataset indices already finished.
    """

    def __init__(self, source: Dataset, batch_size: int, physics=None, seed: int = 0, exclude: set[int] = frozenset()):
        self.source, self.physics, self.seed = source, physics, seed
        positions = list(range(len(source)))
        indices = dataset_indices(source)
        chunks = [positions[s : s + batch_size] for s in range(0, len(positions), batch_size)]
        self.batches = [c for c in chunks if not all(indices[p] in exclude for p in c)]
        self.num_samples = len(positions)
        self.num_left = sum(len(c) for c in self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict:
        batch = collate([self.source[p] for p in self.batches[i]])
        if "image" in batch:
            batch["truth"] = batch.pop("image")
            if self.physics is None:
                raise DataError("benchmark data (ground truth) needs the operator to simulate measurements")
            gens = sample_generators(self.seed, batch["index"].tolist(), STREAM_MEASUREMENT)
            with torch.no_grad():
                batch["y"] = simulate(self.physics, batch["truth"], gens)
        return batch


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_measurement(path: str | Path, channels: int | None = None) -> Tensor:
    """The measurement ``y`` of one file, checked: ``NNNNN.safetensors`` with key ``y`` (any shape,
    finite), or an image (PNG/JPEG...: an image-valued measurement such as a photo with a hole, a
    blurred or a low-resolution photo) as ``[C, H, W]`` in [-1, 1], converted to ``channels``
    (1: grayscale, 3: RGB) when given."""
    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        import numpy as np
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                mode = {1: "L", 3: "RGB"}.get(channels or (1 if im.mode in ("L", "I", "I;16", "1") else 3), "RGB")
                arr = np.asarray(im.convert(mode), dtype=np.float32) / 255.0
        except (OSError, UnidentifiedImageError) as err:
            raise DataError(f"measurement image {path} cannot be read ({err}); replace or remove the file") from None
        img = torch.from_numpy(arr)
        img = img[None] if img.ndim == 2 else img.permute(2, 0, 1)
        return img.contiguous() * 2 - 1
    d = read_safetensors(path, "measurement file")
    if "y" not in d:
        raise DataError(f"measurement file {path} has no tensor 'y' (found {sorted(d) or 'nothing'}); save y under the key 'y'")
    y = d["y"]
    if not torch.isfinite(y).all():
        bad = int((~torch.isfinite(y)).sum())
        raise DataError(f"measurement file {path} holds {bad} NaN/inf values; fix or remove the file")
    return y
