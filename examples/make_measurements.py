"""Writes the example measurement folders (a photo with a hole, a blurred photo, a small photo;
``<family>/y/`` with the mask or kernel file beside it) from scikit-image's astronaut portrait
(public domain, NASA), as a user's own files would look (noise 0.02 on [-1, 1]).

    python examples/make_measurements.py     # rewrites examples/measurements/
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

from equireg_lit.physics import KernelBlur, MaskInpainting, SuperResolution, simulate

OUT = Path(__file__).resolve().parent / "measurements"


def save(x: torch.Tensor, path: Path) -> None:
    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def main() -> None:
    photo = Image.fromarray(data.astronaut()).resize((256, 256), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    gens = [torch.Generator().manual_seed(0)]

    mask = np.full((256, 256), 255, np.uint8)
    mask[96:176, 72:184] = 0  # a hole over the face
    (OUT / "inpainting").mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(OUT / "inpainting" / "mask.png")
    op = MaskInpainting(str(OUT / "inpainting" / "mask.png"), img_size=(3, 256, 256), noise_sigma=0.02)
    y = simulate(op, x, gens)[0]
    y[:, mask == 0] = 1.0  # the hole as a user's file shows it (white); the mask decides what counts
    save(y, OUT / "inpainting" / "y" / "00000.png")

    kernel = np.zeros((21, 21), np.float32)
    for i in range(21):  # a diagonal motion streak
        kernel[i, min(20, i // 2 + 5)] = 1.0
    (OUT / "deblur").mkdir(parents=True, exist_ok=True)
    np.save(OUT / "deblur" / "kernel.npy", kernel)
    op = KernelBlur(str(OUT / "deblur" / "kernel.npy"), img_size=(3, 256, 256), noise_sigma=0.02)
    save(simulate(op, x, gens)[0], OUT / "deblur" / "y" / "00000.png")

    op = SuperResolution(img_size=(3, 256, 256), factor=4, filter="bicubic", noise_sigma=0.02)
    save(simulate(op, x, gens)[0], OUT / "sr4" / "y" / "00000.png")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
