"""Runs studies: cells through ``equireg predict`` (in process, the same code path as the CLI),
tuning stages on the validation split, and script studies' commands.

Every cell keeps its per-sample outputs in ``runs/studies/<study>/<split>/<cell>-<hash>/`` (a rerun
resumes per sample) and its rows in ``benchmarks/results/<study>/cells/<split>/<cell>-<hash>.csv``
(one file per cell, written atomically: processes or machines working on different cells of one
study never write the same file, and a cell another live process holds is skipped or waited for).
The study's tidy table ``benchmarks/results/<study>/samples.csv`` is the union of its cell files,
rebuilt after every cell. The hash covers the composed parts' contents and the overrides, so a
retuned number gives new cells instead of mixing with old rows.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

from benchmarks.stats import device_name, mean_se
from benchmarks.study import REPO, Cell, Study, StudyError, TuneStage
from equireg_lit.data.folder import PredictionFolder
from equireg_lit.errors import DataError
from equireg_lit.utils.io import atomic_write_text

RESULTS = REPO / "benchmarks" / "results"
RUNS = REPO / "runs" / "studies"
BUSY_POLL_S = 30.0  # how often a tuning walk checks whether another process has finished a cell it needs
ID_COLUMNS = ["study", "split", "dataset", "task", "method", "steps", "settings", "config", "index"]


def study_dir(study: str, quick: bool = False) -> Path:
    """Where a study's tables live; quick runs never mix with full ones."""
    return RESULTS / study / ("quick" if quick else "")


def cell_file(cell: Cell, quick: bool = False, digest: str | None = None) -> Path:
    """A cell's per-sample table (``digest``: its ``config_hash()`` when already computed)."""
    return study_dir(cell.study, quick) / "cells" / cell.split / f"{cell.name}-{digest or cell.config_hash()}.csv"


def cell_root(cell: Cell, quick: bool = False, digest: str | None = None) -> Path:
    """Where a cell's ``equireg predict`` runs (``--trainer.default_root_dir``): its per-sample outputs."""
    return RUNS / cell.study / ("quick" if quick else "") / cell.split / f"{cell.name}-{digest or cell.config_hash()}"


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [_typed(r) for r in csv.DictReader(fh)]


def _typed(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if k in ("study", "split", "dataset", "task", "method", "settings", "config", "device"):
            out[k] = v
        elif v == "":
            continue
        else:
            try:
                out[k] = int(v) if k in ("index", "steps", "label") else float(v)
            except ValueError:
                out[k] = v
    return out


def write_rows(path: Path, rows: list[dict]) -> None:
    columns = ID_COLUMNS + sorted({k for r in rows for k in r} - set(ID_COLUMNS))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())


class CellBusy(RuntimeError):
    """Another live process is running this cell (its predictions folder is locked)."""


def hold_cell(root: Path, wait: bool) -> PredictionFolder:
    """Take the cell's predictions-folder lock (the one ``equireg predict`` takes, so this process's
    predict re-enters it). ``wait``: poll until the other process lets go, else raise ``CellBusy``."""
    folder = PredictionFolder.of_run(root)
    folder.root.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            folder.acquire_lock()
            return folder
        except DataError as err:
            if not wait:
                raise CellBusy(str(err)) from None
            time.sleep(BUSY_POLL_S)


def run_cell(cell: Cell, quick: bool = False, batch_size: int | None = None,
             allow_diverged: bool = False, wait: bool = True) -> list[dict]:
    """The cell's per-sample rows; runs ``equireg predict`` for the samples not yet in its table.

    ``allow_diverged`` (tuning cells): samples the solver reports as diverged become rows with
    ``diverged_step`` and no metrics, instead of an error, so a grid value that breaks the sampler
    loses the selection (see ``value_mean``) rather than stopping the tuning. A cell that another
    process is running is waited for (``wait``, what tuning needs: it reads the rows) or refused
    with ``CellBusy`` (the test loop then moves on to the next cell)."""
    digest = cell.config_hash()  # parses every part and hashes weight files: once per cell
    out = cell_file(cell, quick, digest)
    root = cell_root(cell, quick, digest)
    if (done := finished_rows(cell, out)) is not None:
        return done
    folder = hold_cell(root, wait)
    try:
        # Read again under the lock: the process this one waited for may have finished the cell.
        if (done := finished_rows(cell, out)) is not None:
            return done
        shared = shared_rows(cell, digest, quick)
        if shared:
            write_rows(out, shared)
            return shared
        return _predict_cell(cell, root, out, digest, batch_size, allow_diverged)
    finally:
        folder.release_lock()


def finished_rows(cell: Cell, out: Path) -> list[dict] | None:
    """The cell's rows when its table is complete, else None."""
    if out.is_file():
        rows = read_rows(out)
        if len(rows) >= cell.n:
            return rows[: cell.n]
    return None


def _predict_cell(cell: Cell, root: Path, out: Path, digest: str, batch_size: int | None,
                  allow_diverged: bool) -> list[dict]:
    from equireg_lit.cli import main

    argv = ["predict"]
    for part in cell.parts():
        argv += ["--config", str(part)]
    argv += cell.overrides()
    argv += ["--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
             "--trainer.logger", "false", "--trainer.enable_model_summary", "false"]
    if batch_size is not None:
        argv += ["--data.init_args.batch_size", str(batch_size)]
    print(f"[benchmarks] {cell.study} {cell.split} {cell.name} (n {cell.n})", flush=True)
    t0 = time.perf_counter()
    diverged: dict[int, int] = {}
    try:
        main(argv)
    except SystemExit as err:
        failures = root / "predictions" / "failures.json"
        if not (allow_diverged and err.code not in (0, None) and failures.is_file()):
            raise
        diverged = {int(k): int(v) for k, v in json.loads(failures.read_text()).items()}
        print(f"[benchmarks] {cell.name}: {len(diverged)} sample(s) diverged; kept as rows without metrics", flush=True)
    metrics = root / "predictions" / "metrics.csv"
    with open(metrics, newline="") if metrics.is_file() else io.StringIO("") as fh:
        samples = [_typed(r) for r in csv.DictReader(fh)]
    samples += [{"index": i, "diverged_step": step} for i, step in diverged.items()]
    samples = sorted((r for r in samples if r["index"] < cell.n), key=lambda r: r["index"])
    ident = {"study": cell.study, "split": cell.split, "dataset": cell.dataset, "task": cell.task,
             "method": cell.method, "steps": cell.steps, "settings": json.dumps(dict(cell.settings), sort_keys=True),
             "config": digest, "device": device_name()}
    if cell.dataset == "mnist32":
        _add_digit_correct([r for r in samples if "diverged_step" not in r], root / "predictions" / "samples")
    rows = [{**ident, **r} for r in samples]
    write_rows(out, rows)
    print(f"[benchmarks] {cell.name}: {len(rows)} samples in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def shared_rows(cell: Cell, digest: str, quick: bool = False, quiet: bool = False) -> list[dict]:
    """Rows of the same cell run by another study, relabelled for this one ([] if none).

    The hash covers every part, weight file and override that decides a sample, and samples are
    seeded by their index, so a cell with the same hash and split is the same computation (for
    example the DPS baseline that several studies pair against): reuse it instead of rerunning."""
    pattern = f"*/{'quick/' if quick else ''}cells/{cell.split}/*-{digest}.csv"
    own = cell_file(cell, quick, digest)
    for other in sorted(RESULTS.glob(pattern)):
        if other == own:
            continue
        rows = read_rows(other)
        if len(rows) >= cell.n:
            if not quiet:
                print(f"[benchmarks] {cell.study} {cell.split} {cell.name}: {cell.n} samples from "
                      f"{other.relative_to(REPO)} (same config hash)", flush=True)
            return [{**r, "study": cell.study, "method": cell.method, "steps": cell.steps}
                    for r in rows[: cell.n]]
    return []


def _add_digit_correct(samples: list[dict], sample_dir: Path) -> None:
    """Whether the shipped digit classifier reads the true digit from each reconstruction."""
    import torch
    from safetensors.torch import load_file

    from equireg_lit.metrics.digits import load_digit_classifier

    labelled = [r for r in samples if "label" in r]
    if not labelled:
        return
    clf = load_digit_classifier()
    xs = torch.stack([load_file(str(sample_dir / f"{r['index']:05d}.safetensors"))["reconstruction"] for r in labelled])
    with torch.no_grad():
        pred = clf(xs).argmax(-1)
    for r, p in zip(labelled, pred.tolist(), strict=True):
        r["digit_correct"] = float(p == int(r["label"]))


def rebuild_table(study: str, quick: bool = False) -> Path:
    """The study's tidy per-sample table: the union of its cell files."""
    base = study_dir(study, quick)
    rows = [r for f in sorted((base / "cells").glob("*/*.csv")) for r in read_rows(f)]
    path = base / "samples.csv"
    if rows:
        write_rows(path, rows)
    return path


# ---- tuning: a validation study plus a selection rule over its table ----

def tuned_value(dataset: str, part: str, key: str):
    """A value of a tuned part (``key`` dotted as in study settings)."""
    doc = yaml.safe_load((REPO / "configs" / "tuned" / dataset / f"{part}.yaml").read_text())
    node = doc["model"]["init_args"]
    *path, leaf = key.split(".")
    for p in path:
        node = node[p]["init_args"]
    return node[leaf]


def grid_values(study: Study, stage: TuneStage, task: str, steps: int, centre: float | None = None) -> list[float]:
    """A stage's grid for one task and step count: a list, or ``{around: PART, factors: [...],
    scale_steps: S}`` (the tuned value of PART, or ``centre`` when given, times S / steps times each
    factor, 2 significant digits)."""
    g = stage.grid
    if isinstance(g, list):
        return [int(round(v)) if stage.integer else float(v) for v in g]
    base = centre if centre is not None else float(
        tuned_value(study.dataset, g["around"].format(task=task, steps=steps), stage.parameter))
    base *= g.get("scale_steps", steps) / steps
    return [grid_value(stage, base * f) for f in g["factors"]]


def grid_value(stage: TuneStage, v: float) -> float | int:
    """A computed grid value (a factor or an extension) as the cell and the tuned part hold it: a
    whole number for an ``integer`` stage, else a float of 2 significant digits."""
    return int(round(v)) if stage.integer else float(f"{v:.2g}")


def value_mean(rows: list[dict], metric: str, lower_is_better: bool) -> tuple[float, float]:
    """Mean and standard error of a grid value's validation metric; the worst possible value when
    any sample diverged (a setting that breaks the sampler on validation data is never chosen)."""
    if any(metric not in r for r in rows):
        return (math.inf if lower_is_better else -math.inf), math.nan
    return mean_se([r[metric] for r in rows])


def select(means: dict[float, float], lower_is_better: bool) -> float:
    """The selection rule: the grid value with the best mean validation metric."""
    return (min if lower_is_better else max)(means, key=means.get)


def walk_grid(study: Study, stage: TuneStage, task: str, steps: int, rows_for: Callable[[Cell], list[dict]],
              centre: float | None = None) -> tuple[dict[float, tuple[float, float]], float | None, int]:
    """One tuning group's selection walk, for the runner and for ``status``: the stage's grid, then
    one value past a winning edge at a time (at most ``max_extensions``). ``rows_for(cell)`` gives
    a cell's rows (the runner runs the cell; ``status`` reads what is there). Returns the mean per
    value, the chosen value, and the samples missing: while a round of cells lacks rows the walk
    stops there, with no choice."""
    values = grid_values(study, stage, task, steps, centre)
    means: dict[float, tuple[float, float]] = {}
    best = None
    for _ in range(stage.max_extensions + 1):
        missing = 0
        for v in values:
            if v in means:
                continue
            per_method = []
            for m in stage.methods:
                cell = study.tuning_cell(stage, m, task, steps, v)
                rows = rows_for(cell)
                missing += max(0, cell.n - len(rows))
                per_method += rows
            if not missing:
                means[v] = value_mean(per_method, study.metric_for(task), study.lower_is_better)
        if missing:
            return means, None, missing
        best = select({v: m for v, (m, _) in means.items()}, study.lower_is_better)
        ordered = sorted(means)
        if ordered[0] < best < ordered[-1] or len(ordered) == 1:
            break
        beyond = best * stage.extend if best == ordered[-1] else best / stage.extend
        values = [grid_value(stage, beyond)]
    return means, best, 0


def tune_stage(study: Study, stage: TuneStage, tasks: list[str], cell_filter: str | None,
               batch_size: int | None) -> None:
    for task in (t for t in tasks if t in study.stage_tasks(stage)):
        for steps in stage.steps or study.steps:
            writes = stage.writes.format(task=task, steps=steps)
            if cell_filter and not fnmatch.fnmatch(f"{task}_s{steps}", cell_filter):
                continue
            means, best, missing = walk_grid(study, stage, task, steps,
                                             lambda cell: run_cell(cell, batch_size=batch_size, allow_diverged=True))
            if best is None:
                raise StudyError(f"{study.name}: {writes}: the tuning cells gave {missing} fewer samples than their n; "
                                 "is the validation split that large?")
            write_tuned(study, stage, task, steps, writes, means, best)
        rebuild_table(study.name)


def format_mean(m: float) -> str:
    return f"{m:.4g}" if math.isfinite(m) else "diverged"


def write_tuned(study: Study, stage: TuneStage, task: str, steps: int, part: str,
                means: dict[float, tuple[float, float]], best: float) -> None:
    """The tuned part: the chosen value under its config path, with how it was chosen."""
    *path, leaf = stage.parameter.split(".")
    node: dict = {leaf: best}
    for p in reversed(path):  # solver.zeta -> model.init_args.solver.init_args.zeta
        node = {p: {"init_args": node}}
    doc = {"model": {"init_args": node}}
    better = "lowest" if study.lower_is_better else "best"
    grid = ", ".join(f"{v:g}: {format_mean(m)}" for v, (m, _) in sorted(means.items()))
    interior = "interior" if sorted(means)[0] < best < sorted(means)[-1] else "at an edge of the grid"
    header = (f"# {stage.parameter} for {'/'.join(stage.methods)} on {study.dataset} {task} at {steps} steps: the {better}\n"
              f"# mean validation {study.metric_for(task)} ({stage.n} samples) over the grid ({interior}):\n# {grid}\n"
              f"# Written by: python -m benchmarks run {study.name} --only tune\n")
    out = REPO / "configs" / "tuned" / study.dataset / f"{part}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, header + yaml.safe_dump(doc, sort_keys=False))
    print(f"[benchmarks] {out.relative_to(REPO)}: {stage.parameter} = {best:g} ({interior})", flush=True)


# ---- running a study ----

def run_study(study: Study, quick: bool = False, only: list[str] | None = None, cell_filter: str | None = None,
              batch_size: int | None = None) -> None:
    """Tuning stages (full runs only: a quick run composes the committed tuned parts), then the test cells."""
    only = only or ["tune", "test"]
    if study.kind == "script":
        for cmd, creates in study.script_steps(quick):
            if creates and (REPO / creates).exists():
                print(f"[benchmarks] {study.name}: skipping `{cmd}`: {creates} exists (delete it to redo)", flush=True)
                continue
            args = shlex.split(cmd)
            args = [sys.executable if a == "python" else a for a in args]
            print(f"[benchmarks] {study.name}: {cmd}", flush=True)
            subprocess.run(args, cwd=REPO, check=True)
        return
    if "tune" in only and study.tune and not quick:
        for stage in study.tune:
            tune_stage(study, stage, study.tasks, cell_filter, batch_size)
    if "test" in only:
        for cell in study.test_cells(quick):
            if cell_filter and not fnmatch.fnmatch(cell.name, cell_filter):
                continue
            try:
                run_cell(cell, quick, batch_size, wait=False)
            except StudyError as err:
                raise SystemExit(f"benchmarks: {err}") from None
            except CellBusy as err:
                print(f"[benchmarks] skipping {cell.name}: {err}", flush=True)
                continue
            rebuild_table(study.name, quick)
