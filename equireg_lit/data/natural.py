"""``natural32``: 32x32 grayscale patches of the photographs and textures bundled offline with
scikit-image, split by source image (no test image is seen in training or tuning).

Grayscale rather than RGB: it turns all 15 bundled sources (7 grayscale, 8 colour, counting the
two views of ``stereo_motorcycle`` as one source) into one data set, which gives each split
several images of both kinds (photographs and textures); RGB would leave 8 sources, too few to
split by image. Natural images are close to symmetric under horizontal flips, the group EquiReg
relies on here (``docs/natural32.md`` reports the check).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Split by source image. Each split mixes photographs and textures.
SOURCES: dict[str, list[str]] = {
    "train": ["camera", "brick", "moon", "clock", "coffee", "rocket", "stereo_motorcycle",
              "immunohistochemistry", "hubble_deep_field", "retina"],
    "val": ["chelsea", "gravel"],
    "test": ["astronaut", "grass", "coins"],
}
CROP_SIZES = (32, 64, 96)  # source pixels per patch side, each resized to 32x32 (several scales)
PATCHES_PER_IMAGE = {"train": 3000, "val": 500, "test": 400}
MIN_STD = 0.03  # flat patches (sky, black borders) are rejected; std of a [0, 1] patch


def source_image(name: str) -> Tensor:
    """One bundled image as ``[1, H, W]`` grayscale in [0, 1] (the first view of stereo pairs)."""
    import skimage.data
    from skimage.color import rgb2gray

    im = getattr(skimage.data, name)()
    if isinstance(im, tuple):
        im = im[0]
    im = rgb2gray(im) if im.ndim == 3 else im / 255.0
    return torch.from_numpy(im).float()[None]


def patches(image: Tensor, num: int, generator: torch.Generator, size: int = 32) -> Tensor:
    """``num`` random crops of ``image`` at the crop sizes in turn, resized to ``size`` (antialiased),
    without flat ones; ``[num, 1, size, size]`` in [0, 1]."""
    _, h, w = image.shape
    out: list[Tensor] = []
    tries = 0
    while len(out) < num:
        tries += 1
        if tries > 50 * num:
            raise RuntimeError(f"could not find {num} textured patches (found {len(out)})")
        crop = CROP_SIZES[len(out) % len(CROP_SIZES)]
        if crop > min(h, w):
            crop = min(h, w)
        top = int(torch.randint(h - crop + 1, (1,), generator=generator))
        left = int(torch.randint(w - crop + 1, (1,), generator=generator))
        p = image[:, top : top + crop, left : left + crop][None]
        if crop != size:
            p = F.interpolate(p, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        p = p.clamp(0, 1)[0]
        if p.std() >= MIN_STD:
            out.append(p)
    return torch.stack(out)


def build_natural32(seed: int = 0) -> dict[str, Tensor]:
    """Every split's patches in [-1, 1] (``{split}``) and the source index of each (``{split}_source``)."""
    out: dict[str, Tensor] = {}
    for s, (split, names) in enumerate(SOURCES.items()):
        chunks, src = [], []
        for i, name in enumerate(names):
            g = torch.Generator().manual_seed(seed * 1000 + s * 100 + i)
            chunks.append(patches(source_image(name), PATCHES_PER_IMAGE[split], g))
            src.append(torch.full((PATCHES_PER_IMAGE[split],), i))
        x = torch.cat(chunks) * 2 - 1
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed + s))
        out[split], out[f"{split}_source"] = x[perm].contiguous(), torch.cat(src)[perm].contiguous()
    return out


def natural32(cache_dir: str = "data_cache/natural32", seed: int = 0) -> dict[str, Tensor]:
    """Every split's patches and sources (``build_natural32``), built once and cached under
    ``cache_dir`` (rebuilt when the provenance changes)."""
    from equireg_lit.utils.io import cached_tensors

    return cached_tensors(cache_dir, "natural32", natural32_provenance(seed), lambda: build_natural32(seed))


def natural32_provenance(seed: int = 0) -> dict:
    return {"dataset": "natural32", "version": 1, "seed": seed, "sources": SOURCES, "crop_sizes": list(CROP_SIZES),
            "patches_per_image": PATCHES_PER_IMAGE, "min_std": MIN_STD, "color": "gray"}
