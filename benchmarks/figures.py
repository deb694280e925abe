"""The plot a restoration study's section opens with: each method's paired effect against the
study's baseline by step count, one panel per task, with the 95 % intervals of the table.

Drawn with matplotlib (a dependency already) on the non-interactive Agg backend, from the same
per-sample tables as the report; the PNG carries no timestamp, so rerunning the report on
unchanged tables leaves it byte-identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.stats import paired
from benchmarks.study import Study

if TYPE_CHECKING:
    from benchmarks.report import Groups

PANELS_PER_ROW = 4
LEGEND_COLUMNS = 4
SPREAD = 0.3  # how far apart the methods' markers sit at one step count (in step-count slots)


def effects(study: Study, groups: Groups | None = None) -> dict[str, dict[str, list[tuple[int, float, float, float]]]]:
    """``{task: {method: [(steps, mean Δ, CI low, CI high), ...]}}`` over the cells that ran
    (``groups``: the report's :func:`~benchmarks.report.group_rows`, read here when not given)."""
    from benchmarks.report import group_rows

    out: dict[str, dict[str, list[tuple[int, float, float, float]]]] = {}
    for (task, steps), group in (group_rows(study) if groups is None else groups).items():
        base = group[study.baseline][1] if study.baseline in group else None
        if base is None:
            continue
        metric = study.metric_for(task)
        for method, (_, rows) in group.items():
            if rows is None or method == study.baseline:
                continue
            d = paired(base, rows, metric)
            out.setdefault(task, {}).setdefault(method, []).append((steps, d["mean_diff"], *d["ci95"]))
    return out


def effect_figure(study: Study, out: Path, groups: Groups | None = None) -> Path | None:
    """Write the study's effect plot to ``out``; None (and no file) when the study has fewer than
    two step counts or no method has a finished cell next to its baseline."""
    data = effects(study, groups)
    if len(study.steps) < 2 or not data:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in study.tasks if t in data]
    cols = min(PANELS_PER_ROW, len(tasks))
    rows = -(-len(tasks) // cols)
    methods = [m for m in study.methods if m != study.baseline]
    legend_rows = -(-len(methods) // LEGEND_COLUMNS)
    size = (max(3.2 * cols, 6.4), 2.4 * rows + 0.2 * legend_rows + 0.5)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, layout="constrained")
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    better = "lower" if study.lower_is_better else "higher"
    panels = list(axes.flat)
    for ax, task in zip(panels[: len(tasks)], tasks, strict=True):
        ax.axhline(0.0, color="0.5", lw=0.8)
        for i, method in enumerate(methods):
            if method not in data[task]:
                continue
            points = sorted(data[task][method])
            # Methods side by side at each step count, so their intervals do not hide each other.
            offset = SPREAD * (i / (len(methods) - 1) - 0.5) if len(methods) > 1 else 0.0
            x = [study.steps.index(s) + offset for s, *_ in points]
            y = [p[1] for p in points]
            err = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
            ax.errorbar(x, y, yerr=err, fmt="o-", ms=3, lw=1, capsize=2, color=colors[method], label=method)
        ax.set_title(task, fontsize=9)
        ax.set_ylabel(f"Δ {study.metric_for(task)}", fontsize=8)
        ax.set_xticks(range(len(study.steps)), [str(s) for s in study.steps])
        ax.set_xlim(-0.5, len(study.steps) - 0.5)
        ax.tick_params(labelsize=8)
    for ax in panels[len(tasks):]:
        ax.set_visible(False)
    for i, ax in enumerate(panels[: len(tasks)]):
        if i + cols >= len(tasks):  # the lowest panel of its column
            ax.set_xlabel("steps", fontsize=8)
    handles, labels = [], []
    for ax in panels:  # a legend with every method that appears in any panel
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), LEGEND_COLUMNS), fontsize=8, frameon=False)
    fig.suptitle(f"{study.name}: each method minus {study.baseline}, paired,\n"
                 f"95 % interval ({better} is better)", fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return out
