"""Where a study stands: which tuning groups and test cells are complete, and the work left.

    python -m benchmarks status STUDY [--cells GLOB]

Read-only: nothing runs. A cell counts as done when its table under the current config hash holds
``n`` rows, or another study's table with the same hash does (``run`` would copy it). A test cell
whose tuned parts are not written yet waits on tuning. An unfinished cell's samples already in its
predict folder are not left, and a cell a live process is running is named with its process. Time
left is the remaining samples times the median seconds per sample of the study's finished rows at
the same step count on this device (any device when none here; the median seconds per step times
the step count where a step count has no rows yet); it is an estimate for planning, not a benchmark.
"""

from __future__ import annotations

import fnmatch
import statistics
from dataclasses import dataclass, field

from benchmarks import runner
from benchmarks.stats import device_name
from benchmarks.study import Cell, Study, StudyError
from equireg_lit.data.folder import PredictionFolder


@dataclass
class StepProgress:
    """One step count of a study: tuning groups and test cells, done / all, and samples left."""

    steps: int
    tune_done: int = 0
    tune_all: int = 0
    test_done: int = 0
    test_all: int = 0
    samples_left: int = 0
    waiting: list[str] = field(default_factory=list)  # test cells whose tuned parts are missing
    running: list[str] = field(default_factory=list)  # "CELL (k/n, process PID on HOST)" for cells being run now
    seconds_left: float | None = None


def available_rows(cell: Cell, digest: str | None = None) -> list[dict] | None:
    """The rows a cell has now (its own table or another study's with the same hash); None when a
    tuned part it composes is not written yet (its hash is not known)."""
    try:
        digest = digest or cell.config_hash()
    except StudyError:
        return None
    own = runner.cell_file(cell, digest=digest)
    rows = runner.read_rows(own) if own.is_file() else []
    if len(rows) < cell.n:
        rows = runner.shared_rows(cell, digest, quiet=True) or rows
    return rows[: cell.n]


def unfinished_cell(cell: Cell, digest: str) -> tuple[int, str | None]:
    """An unfinished cell's samples already in its predict folder, and a line naming the live process
    running it (None when none is)."""
    folder = PredictionFolder.of_run(runner.cell_root(cell, digest=digest))
    finished = sum(i < cell.n for i in folder.finished_indices())
    holder = folder.live_holder()
    running = None if holder is None else (f"{cell.name} ({finished}/{cell.n}, process {holder.get('pid')} on "
                                           f"{holder.get('host')})")
    return finished, running


def _tuning_groups(study: Study, cell_filter: str | None):
    """(steps, done, samples left) per tuning group: the runner's selection walk over the rows
    there are (``runner.walk_grid``); a group is done when its part is written and its walk ends
    in a choice. A grid centred on a part an earlier stage of the study writes is centred on what
    that stage chooses from its rows (the part on disk may already hold the later stage's value)."""
    chosen: dict[str, float | None] = {}  # part -> the value its stage chooses from the rows there are
    for stage in study.tune:
        unknown = stage.n * len(stage.methods) * 3  # a grid of three around a value not chosen yet
        for task in study.stage_tasks(stage):
            for steps in stage.steps or study.steps:
                if cell_filter and not fnmatch.fnmatch(f"{task}_s{steps}", cell_filter):
                    continue
                writes = stage.writes.format(task=task, steps=steps)
                around = stage.grid["around"].format(task=task, steps=steps) if isinstance(stage.grid, dict) else None
                best, left = None, unknown
                if around not in chosen or chosen[around] is not None:
                    try:
                        _, best, left = runner.walk_grid(study, stage, task, steps,
                                                         lambda c: available_rows(c) or [], chosen.get(around))
                    except FileNotFoundError:  # the grid centres on a part not written yet
                        pass
                chosen[writes] = best
                part = runner.REPO / "configs" / "tuned" / study.dataset / f"{writes}.yaml"
                yield steps, part.is_file() and best is not None, left


def seconds_per_sample(study: Study) -> dict[int, float]:
    """Median seconds per sample of the study's finished rows by step count (this device's rows
    when it has any); a step count without rows scales the median seconds per step."""
    table = runner.study_dir(study.name) / "cells"
    rows = [r for f in sorted(table.glob("*/*.csv")) for r in runner.read_rows(f) if "seconds" in r]
    rows = [r for r in rows if r.get("device") == device_name()] or rows
    out = {steps: statistics.median(r["seconds"] for r in rows if r["steps"] == steps) for steps in {r["steps"] for r in rows}}
    if rows:
        per_step = statistics.median(r["seconds"] / r["steps"] for r in rows)
        out |= {steps: per_step * steps for steps in study.steps if steps not in out}
    return out


def study_progress(study: Study, cell_filter: str | None = None) -> list[StepProgress]:
    """The study's progress per step count (restoration studies)."""
    by_steps = {s: StepProgress(s) for s in sorted(study.steps)}
    for steps, done, left in _tuning_groups(study, cell_filter):
        p = by_steps.setdefault(steps, StepProgress(steps))
        p.tune_all += 1
        p.tune_done += done
        p.samples_left += left
    for cell in study.test_cells():
        if cell_filter and not fnmatch.fnmatch(cell.name, cell_filter):
            continue
        p = by_steps[cell.steps]
        p.test_all += 1
        try:
            digest = cell.config_hash()
        except StudyError:  # a tuned part it composes is not written yet
            p.waiting.append(cell.name)
            p.samples_left += cell.n
            continue
        rows = available_rows(cell, digest)
        if len(rows) >= cell.n:
            p.test_done += 1
            continue
        finished, running = unfinished_cell(cell, digest)
        p.samples_left += cell.n - max(len(rows), finished)
        if running:
            p.running.append(running)
    rates = seconds_per_sample(study)
    for p in by_steps.values():
        if p.steps in rates:
            p.seconds_left = p.samples_left * rates[p.steps]
    return [p for p in by_steps.values() if p.tune_all or p.test_all]


def format_hours(seconds: float | None) -> str:
    if seconds is None:
        return "no finished rows to estimate from"
    return f"about {seconds / 3600:.1f} h" if seconds >= 3600 else f"about {seconds / 60:.0f} min"


def status_lines(study: Study, cell_filter: str | None = None) -> list[str]:
    """Human-readable progress, one line per step count and a total."""
    if study.kind == "script":
        return [f"{study.name}: a script study (rerun it whole: python -m benchmarks run {study.name})"]
    progress = study_progress(study, cell_filter)
    lines = [f"{study.name}: {study.title}"]
    for p in progress:
        wait = f", {len(p.waiting)} waiting on tuning" if p.waiting else ""
        tune = f"tuning {p.tune_done}/{p.tune_all} groups" if p.tune_all else "no tuning"
        lines.append(f"  {p.steps:>5} steps: {tune}, test {p.test_done}/"
                     f"{p.test_all} cells{wait}; {p.samples_left} samples left, {format_hours(p.seconds_left)}")
        lines += [f"         running: {r}" for r in p.running]
    known = [p.seconds_left for p in progress if p.seconds_left is not None and p.samples_left]
    total = sum(p.samples_left for p in progress)
    if not total:
        lines.append("  complete: python -m benchmarks report")
    else:
        unknown = any(p.seconds_left is None and p.samples_left for p in progress)
        lines.append(f"  left: {total} samples, {format_hours(sum(known) if known else None)}"
                     + (" + step counts not yet timed" if unknown and known else "")
                     + f" on {device_name()} at one process; resume with python -m benchmarks run {study.name}")
    return lines


def summary_line(study: Study) -> str:
    """One line: the study's cells done and the samples and time left."""
    progress = study_progress(study)
    done, cells = sum(p.test_done for p in progress), sum(p.test_all for p in progress)
    left = sum(p.samples_left for p in progress)
    if not left:
        return f"{study.name:32s} complete ({cells} test cells)"
    timed = [p.seconds_left for p in progress if p.seconds_left is not None]
    return f"{study.name:32s} {done}/{cells} test cells; {left} samples left, {format_hours(sum(timed) if timed else None)}"
