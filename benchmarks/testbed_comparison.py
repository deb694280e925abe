"""EquiReg's effect on MNIST next to natural32, per task and step count (from the grids' cells).

MNIST digits are not flip-symmetric; natural32 patches are (docs/natural32.md). Each column is one
f in one grid: the paired PSNR difference to DPS on the same 100 test samples with its 95 %
interval, and how many samples improved. Nothing is rerun: the table reads the current cells of
``mnist32_quality``, ``mnist32_denoiser_t100`` and ``natural32_quality``; a column whose method a
grid does not have, or whose cells have not run, reads "—".

    python -m benchmarks.testbed_comparison
"""

from __future__ import annotations

from benchmarks.report import cell_rows, table_script
from benchmarks.stats import paired
from benchmarks.study import Study, StudyError, load

# (study, method, column heading)
COLUMNS = [
    ("mnist32_quality", "equireg_denoiser", "MNIST: denoiser t0 = 20"),
    ("mnist32_denoiser_t100", "equireg_denoiser_t100", "MNIST: denoiser t0 = 100"),
    ("mnist32_quality", "equireg_probe", "MNIST: separation probe"),
    ("natural32_quality", "equireg_denoiser", "natural32: denoiser"),
    ("natural32_quality", "equireg_probe", "natural32: probe"),
]


def effect(study: Study | None, method: str, task: str, steps: int) -> str:
    """``+0.45 [+0.37, +0.53] (71/100)``: the method's paired PSNR gain over the study's baseline."""
    if study is None or method not in study.methods:
        return "—"
    cells = {c.method: c for c in study.test_cells() if c.task == task and c.steps == steps}
    if method not in cells or study.baseline not in cells:
        return "—"
    base, rows = cell_rows(cells[study.baseline]), cell_rows(cells[method])
    if base is None or rows is None:
        return "not run"
    d = paired(base, rows, "psnr")
    return f"{d['mean_diff']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] ({d['wins']}/{d['n']})"


def table() -> str:
    studies: dict[str, Study | None] = {}
    for name, _, _ in COLUMNS:
        try:
            studies[name] = load(name)
        except StudyError:
            studies[name] = None
    present = [s for s in studies.values() if s is not None]
    tasks = list(dict.fromkeys(t for s in present for t in s.tasks))
    step_counts = sorted({n for s in present for n in s.steps})
    lines = ["| task | steps | " + " | ".join(c[2] for c in COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for task in tasks:
        for steps in step_counts:
            cols = [effect(studies[s], m, task, steps) for s, m, _ in COLUMNS]
            if all(c == "—" for c in cols):
                continue
            lines.append(f"| {task} | {steps} | " + " | ".join(cols) + " |")
    lines += ["", "ΔPSNR (dB) of DPS + EquiReg over DPS, paired on the same 100 test samples, 95 % t-interval, "
              "(samples improved / n); each f's weight tuned on validation samples of its own data set. "
              "The machines are named in each grid's table."]
    return "\n".join(lines) + "\n"


def main() -> None:
    table_script(__doc__, "testbed_comparison.md", table)


if __name__ == "__main__":
    main()
