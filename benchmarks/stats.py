"""Summary statistics of per-sample tables: mean and standard error, paired differences with
95 % t-intervals, the machine a number came from, and the .json / .md pair a script writes."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path

import torch


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    m = sum(values) / len(values)
    var = sum((x - m) ** 2 for x in values) / max(len(values) - 1, 1)
    return m, math.sqrt(var / len(values))


def paired(a: dict[int, dict], b: dict[int, dict], key: str) -> dict:
    """Paired difference ``b - a`` of ``key`` over the samples both have, with a 95 % t-interval."""
    from scipy import stats

    idx = sorted(set(a) & set(b))
    d = [b[i][key] - a[i][key] for i in idx]
    m, se = mean_se(d)
    h = stats.t.ppf(0.975, len(d) - 1) * se if len(d) > 1 else float("nan")
    return {"n": len(d), "mean_diff": m, "ci95": [m - h, m + h], "wins": sum(x > 0 for x in d)}


def machine(device: torch.device | None = None) -> str:
    """The machine a result came from; the last field names the device (GPU name or "CPU only")."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU only"
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, {where}"


def device_name() -> str:
    """The device column of a per-sample table: the GPU's name or ``CPU``."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"


def write_result(stem: str | Path, data: dict, markdown: list[str]) -> None:
    """A script's result: ``stem.json`` (every number) and ``stem.md`` (the table docs/results.md
    includes), each written atomically; the table is printed too."""
    from equireg_lit.utils.io import atomic_write_text

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stem.with_suffix(".json"), json.dumps(data, indent=2) + "\n")
    atomic_write_text(stem.with_suffix(".md"), "\n".join(markdown) + "\n")
    print("\n".join(markdown))
