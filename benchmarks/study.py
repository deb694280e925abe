"""Declarative studies: ``benchmarks/studies/<name>.yaml`` says what to run; cells are what runs.

A **restoration** study is a grid of cells (task x method x steps x settings) on one dataset and
split. Each cell is one ``equireg predict`` run of a composed config (``configs/method/<m>``,
``configs/base/<dataset>``, ``configs/task/<dataset>/<task>``, the method's tuned parts from
``configs/tuned/<dataset>/``), with the study's overrides. Tuning stages run validation cells over a
grid and write tuned parts; the test cells compose them. A **script** study runs commands whose
Markdown results the report includes (cost and throughput, peer runs, PDE solver validation).

    title: ...                       # section title in docs/results.md
    description: ...                 # Markdown above the tables
    kind: restoration                # or script
    dataset: mnist32
    metric: psnr                     # headline and selection metric (lower_is_better for errors)
    tasks: [gaussian_blur, ...]
    steps: [20, 50]
    n: 100                           # test samples per cell
    baseline: dps
    methods:                         # name -> method part, tuned parts, extra settings
      dps: {method: dps, tuned: ["{task}_s{steps}"]}
      deepinv: {method: dps, extra: [method/deepinv_dps], tuned: ["{task}_s{steps}_deepinv"]}
      equireg: {method: dps_equireg, tuned: ["{task}_s{steps}", "{task}_s50_equireg"],
                set: {regularizer.freq: 0.5}}
      daps: {method: daps, steps_key: solver.annealing_steps}   # what the step count sets
    tune:                            # stages, in order (each may use the previous stages' parts)
      - {parameter: solver.zeta, methods: [dps], steps: [50], n: 32, grid: [1, 3, 10],
         extend: 3, max_extensions: 2, writes: "{task}_s{steps}"}
      - {parameter: solver.equi_phase_steps, integer: true, methods: [sitcom_equireg], grid: [3, 10, 30], ...}
    quick: {n: 8, tasks: [sr4], steps: [10]}   # composes the committed tuned parts
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
STUDIES = REPO / "benchmarks" / "studies"
CONFIGS = REPO / "configs"


class StudyError(ValueError):
    """A study spec that cannot run; the message names the file and the key."""


def setting_flag(key: str) -> str:
    """CLI flag of a study setting: ``solver.zeta`` -> ``--model.init_args.solver.init_args.zeta``;
    ``data.batch_size`` -> ``--data.init_args.batch_size``; ``trainer.X`` -> ``--trainer.X``."""
    head, _, rest = key.partition(".")
    if head == "trainer":
        return f"--{key}"
    if head == "data":
        return f"--data.init_args.{rest}"
    if head == "model":
        return f"--model.init_args.{rest}"
    return f"--model.init_args.{head}.init_args.{rest}" if rest else f"--model.init_args.{head}"


def format_value(v) -> str:
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


@dataclass(frozen=True)
class Cell:
    """One predict run: a method on a task at a step count, on ``n`` samples of a split."""

    study: str
    split: str
    dataset: str
    task: str
    method: str  # the study's method name
    method_part: str  # configs/method/<method_part>.yaml
    steps: int
    n: int
    tuned: tuple[str, ...] = ()  # configs/tuned/<dataset>/<name>.yaml, formatted
    extra: tuple[str, ...] = ()  # configs/<path>.yaml applied after the task (e.g. a peer's solver)
    settings: tuple[tuple[str, object], ...] = ()  # study settings (dotted keys), applied last
    grid_point: str = ""  # a tuning cell's grid value, e.g. "zeta3.0" (part of the name)
    steps_key: str = "solver.num_steps"  # the setting the study's step count sets (DAPS: annealing_steps)
    steps_factor: float = 1.0  # runs round(steps * factor) steps: a base sampler at equal compute

    @property
    def run_steps(self) -> int:
        """The step count the cell runs (``steps`` is the row of the table it belongs to)."""
        return round(self.steps * self.steps_factor)

    @property
    def name(self) -> str:
        return f"{self.task}_{self.method}_s{self.steps}" + (f"_{self.grid_point}" if self.grid_point else "")

    def parts(self) -> list[Path]:
        """The composed config files, in order of application; a missing one is a StudyError."""
        files = [CONFIGS / "method" / f"{self.method_part}.yaml", CONFIGS / "base" / f"{self.dataset}.yaml",
                 CONFIGS / "task" / self.dataset / f"{self.task}.yaml",
                 *(CONFIGS / f"{e}.yaml" for e in self.extra),
                 *(CONFIGS / "tuned" / self.dataset / f"{t}.yaml" for t in self.tuned)]
        for f in files:
            if not f.is_file():
                hint = " (written by tuning: run the study without --only test)" if "tuned" in f.parts else ""
                raise StudyError(f"{self.study}: cell {self.name} needs {f.relative_to(REPO)}, which does not exist{hint}")
        return files

    def overrides(self) -> list[str]:
        args = [setting_flag(self.steps_key), str(self.run_steps),
                "--data.init_args.predict_split", self.split, "--data.init_args.predict_start", "0",
                "--data.init_args.predict_limit", str(self.n)]
        for k, v in self.settings:
            args += [setting_flag(k), format_value(v)]
        return args

    def config_hash(self) -> str:
        """Hash of everything that decides a sample's result: the parts' settings (parsed, so
        comments and layout do not count; composed sub-parts expanded), the contents of the weight
        files they name, and the overrides but the sample count. A retuned number or retrained
        prior gives new cells and never mixes with old rows."""
        h = hashlib.sha256()
        for f in self.parts():
            for doc in composed_docs(f):
                doc.pop("compose", None)
                h.update(json.dumps(doc, sort_keys=True).encode())
                for name in _weights_named(doc):
                    h.update(_weights_digest(name).encode())
        ov = self.overrides()
        i = ov.index("--data.init_args.predict_limit")
        h.update(json.dumps(ov[:i] + ov[i + 2:]).encode())
        return h.hexdigest()[:10]


def composed_docs(path: Path) -> list[dict]:
    """A config file's documents in the order the CLI applies them (its ``compose:`` parts first)."""
    from equireg_lit.utils.compose import expand_config_args

    return [yaml.safe_load(Path(arg).read_text() if "\n" not in arg else arg) or {}
            for arg in expand_config_args(["--config", str(path)])[1::2]]


def _weights_named(node) -> list[str]:
    """Every ``weights`` / ``ema_weights`` value in a config tree."""
    if isinstance(node, dict):
        out = [v for k, v in node.items() if k in ("weights", "ema_weights") and isinstance(v, str)]
        return out + [w for v in node.values() for w in _weights_named(v)]
    if isinstance(node, list):
        return [w for v in node for w in _weights_named(v)]
    return []


def _weights_digest(name: str) -> str:
    """SHA-256 of a weight file or of every file of a weights directory (a latent diffusion
    directory), by shipped name or path (resolved from the repository root)."""
    from equireg_lit.weights import SHIPPED_DIR, resolve_weights

    local = name if "/" not in name or Path(name).is_absolute() else str(REPO / name)
    folder = SHIPPED_DIR / name if "/" not in name and "." not in name else Path(local)
    if folder.is_dir():
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return hashlib.sha256("".join(
            f"{p.relative_to(folder)}:{_file_digest(str(p), p.stat().st_mtime_ns, p.stat().st_size)}"
            for p in files).encode()).hexdigest()
    try:
        path, _ = resolve_weights(local)
    except Exception:  # noqa: BLE001 - a missing file is the run's error to report, not the hash's
        return name
    st = Path(path).stat()
    return _file_digest(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=None)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class TuneStage:
    parameter: str
    methods: list[str]
    writes: str
    grid: list | dict
    steps: list[int] | None = None
    n: int = 16
    extend: float = 3.0
    max_extensions: int = 2
    integer: bool = False  # a count (e.g. solver.equi_phase_steps): grid values and extensions are whole numbers


@dataclass
class Study:
    name: str
    title: str
    description: str
    kind: str = "restoration"
    dataset: str = ""
    metric: str | dict[str, str] = "psnr"  # or per task: {forward: rel_l2_u, inverse: rel_l2_a}
    lower_is_better: bool = False
    tasks: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    n: int = 100
    split: str = "test"
    baseline: str | None = None
    methods: dict[str, dict] = field(default_factory=dict)
    tune: list[TuneStage] = field(default_factory=list)
    quick: dict = field(default_factory=dict)
    # a command line, or {run: LINE, creates: PATH}: skipped while PATH exists (a fit whose export
    # a later command reads; delete PATH to redo it)
    commands: list[str | dict] = field(default_factory=list)
    quick_commands: list[str | dict] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    order: int = 100  # position in docs/results.md
    cost_table: bool = False  # also report each method's metric and time per sample at every step count
    secondary_metrics: list[str] = field(default_factory=list)  # also reported, mean ± s.e. per method

    def script_steps(self, quick: bool = False) -> list[tuple[str, str | None]]:
        """(command line, the path whose existence skips it or None), in order."""
        cmds = self.quick_commands if quick and self.quick_commands else self.commands
        return [(c, None) if isinstance(c, str) else (c["run"], c.get("creates")) for c in cmds]

    def metric_for(self, task: str) -> str:
        return self.metric[task] if isinstance(self.metric, dict) else self.metric

    def method_cell(self, method: str, task: str, steps: int, split: str, n: int,
                    settings: dict | None = None) -> Cell:
        spec = self.methods[method]
        factor = float(spec.get("steps_factor", 1.0))
        fmt = {"task": task, "steps": steps, "run_steps": round(steps * factor)}
        merged = {**(spec.get("set") or {}), **(settings or {})}
        merged = {k: (v.format(**fmt, half=steps // 2) if isinstance(v, str) else v) for k, v in merged.items()}
        point = "".join(f"{k.split('.')[-1]}{v}" for k, v in (settings or {}).items())
        return Cell(self.name, split, self.dataset, task, method, spec["method"], steps, n,
                    tuple(t.format(**fmt) for t in spec.get("tuned", [])), tuple(spec.get("extra", [])),
                    tuple(sorted(merged.items())), point, spec.get("steps_key", "solver.num_steps"), factor)

    def method_tasks(self, method: str) -> list[str]:
        """The tasks a method runs on: the study's, or the method's own ``tasks`` (e.g. PSLD, which
        needs a linear operator, on the linear tasks only)."""
        return self.methods[method].get("tasks", self.tasks)

    def stage_tasks(self, stage: TuneStage) -> list[str]:
        """The tasks a tuning stage tunes: those every one of its methods runs on."""
        return [t for t in self.tasks if all(t in self.method_tasks(m) for m in stage.methods)]

    def tuning_cell(self, stage: TuneStage, method: str, task: str, steps: int, value) -> Cell:
        """A stage's validation cell for one grid value: it composes the earlier stages' tuned
        parts but not the one the stage is writing."""
        cell = self.method_cell(method, task, steps, "val", stage.n, {stage.parameter: value})
        writes = stage.writes.format(task=task, steps=steps)
        return replace(cell, tuned=tuple(t for t in cell.tuned if t != writes))

    def test_cells(self, quick: bool = False) -> list[Cell]:
        q = self.quick if quick else {}
        tasks, steps, n = q.get("tasks", self.tasks), q.get("steps", self.steps), q.get("n", self.n)
        # cheapest step counts first: a stopped run still fills whole rows of the table
        cells = [self.method_cell(m, t, s, self.split, n) for s in sorted(steps) for t in tasks for m in self.methods
                 if t in self.method_tasks(m)]
        if quick:  # a smoke run: tuned parts not written yet leave the solver's defaults
            have = lambda t: (CONFIGS / "tuned" / self.dataset / f"{t}.yaml").is_file()  # noqa: E731
            cells = [replace(c, tuned=tuple(t for t in c.tuned if have(t))) for c in cells]
        return cells


def task_operator(task: str, dataset: str = "mnist32"):
    """The operator of ``configs/task/<dataset>/<task>.yaml`` (every benchmark uses the same one)."""
    from lightning.pytorch.cli import instantiate_class

    operator: dict = {}
    for doc in composed_docs(CONFIGS / "task" / dataset / f"{task}.yaml"):
        part = ((doc.get("model") or {}).get("init_args") or {}).get("operator")
        if part:
            operator = {**operator, **part, "init_args": {**operator.get("init_args", {}), **part.get("init_args", {})}}
    return instantiate_class((), operator)


METHOD_KEYS = {"method", "tuned", "extra", "set", "steps_key", "steps_factor", "tasks"}


def load(name: str) -> Study:
    """Read ``benchmarks/studies/<name>.yaml``; unknown keys and missing methods are errors."""
    path = STUDIES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in STUDIES.glob("*.yaml")))
        raise StudyError(f"no study '{name}' ({path.relative_to(REPO)}); known: {known}")
    doc = yaml.safe_load(path.read_text()) or {}
    fields = set(Study.__dataclass_fields__) - {"name"}
    unknown = set(doc) - fields
    if unknown:
        raise StudyError(f"{path.relative_to(REPO)}: unknown keys {sorted(unknown)}; known: {sorted(fields)}")
    stages = []
    for i, st in enumerate(doc.pop("tune", None) or []):
        try:
            stages.append(TuneStage(**st))
        except TypeError as err:
            raise StudyError(f"{path.relative_to(REPO)}: tune stage {i}: {err}") from None
    study = Study(name=name, tune=stages, **doc)
    for m, spec in study.methods.items():
        if "method" not in spec:
            raise StudyError(f"{path.relative_to(REPO)}: method '{m}' needs 'method' (a file under configs/method)")
        if set(spec.get("tasks", study.tasks)) - set(study.tasks):
            raise StudyError(f"{path.relative_to(REPO)}: method '{m}': tasks {sorted(set(spec['tasks']) - set(study.tasks))} "
                             "are not among the study's tasks")
        if set(spec) - METHOD_KEYS:
            raise StudyError(f"{path.relative_to(REPO)}: method '{m}': unknown keys {sorted(set(spec) - METHOD_KEYS)}; "
                             f"known: {sorted(METHOD_KEYS)}")
    for c in study.commands + study.quick_commands:
        if not isinstance(c, str) and (not isinstance(c, dict) or "run" not in c or set(c) - {"run", "creates"}):
            raise StudyError(f"{path.relative_to(REPO)}: a command is a line or {{run: LINE, creates: PATH}}, got {c!r}")
    if study.baseline is not None and study.baseline not in study.methods:
        raise StudyError(f"{path.relative_to(REPO)}: baseline '{study.baseline}' is not one of the methods")
    return study


def all_studies() -> list[Study]:
    return sorted((load(p.stem) for p in STUDIES.glob("*.yaml")), key=lambda s: (s.order, s.name))
