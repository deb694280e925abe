"""Pictures a person reads: a labelled side-by-side strip per sample and a contact sheet per run.

Written with PIL (already a dependency through torchvision) rather than matplotlib: a strip is a
few pasted images and a label row, and PIL's built-in bitmap font needs no font files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

# Small images (32x32 digits, 64x64 fields) are enlarged with nearest-neighbour sampling so a
# strip is readable at 100 % zoom; 256x256 photographs stay at their size.
MIN_PANEL_HEIGHT = 128
GAP = 4
LABEL_HEIGHT = 14


def _to_pil(img: Tensor, height: int):
    """A ``[C, H, W]`` picture in [0, 1] (C = 1 or 3) as an RGB PIL image ``height`` pixels high."""
    from PIL import Image

    arr = (img.detach().float().clamp(0, 1).cpu() * 255).round().to(torch.uint8)
    arr = arr.expand(3, -1, -1) if arr.shape[0] == 1 else arr
    pil = Image.fromarray(arr.permute(1, 2, 0).numpy(), mode="RGB")
    width = max(1, round(pil.width * height / pil.height))
    return pil.resize((width, height), Image.NEAREST) if (width, height) != pil.size else pil


def comparison_strip(panels: list[tuple[str, Tensor]]):
    """Panels side by side, each under its label, on a white background (a PIL image).

    Args:
        panels: ``(label, [C, H, W] picture in [0, 1])`` pairs, e.g. truth, measurement,
            reconstruction; every panel is shown at the height of the tallest (at least 128 px).
    """
    from PIL import Image, ImageDraw

    height = max(MIN_PANEL_HEIGHT, max(p.shape[-2] for _, p in panels))
    images = [(label, _to_pil(p, height)) for label, p in panels]
    width = sum(im.width for _, im in images) + GAP * (len(images) - 1)
    strip = Image.new("RGB", (width, height + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(strip)
    x = 0
    for label, im in images:
        draw.text((x + 2, 1), label, fill="black")
        strip.paste(im, (x, LABEL_HEIGHT))
        x += im.width + GAP
    return strip


def save_contact_sheet(strips: list[Path], out: Path, max_rows: int = 16) -> Path | None:
    """The first ``max_rows`` strips stacked top to bottom in one PNG (None when there are none)."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in strips[:max_rows]]
    if not images:
        return None
    width = max(im.width for im in images)
    sheet = Image.new("RGB", (width, sum(im.height for im in images) + GAP * (len(images) - 1)), "white")
    y = 0
    for im in images:
        sheet.paste(im, (0, y))
        y += im.height + GAP
    tmp = out.with_name(out.name + ".tmp.png")
    sheet.save(tmp)
    tmp.replace(out)
    return out


def png_array(path: Path) -> np.ndarray:
    """A PNG as an ``[H, W, 3]`` uint8 array (for tests and checks)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
