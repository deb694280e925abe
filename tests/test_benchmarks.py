"""Studies: specs load, cells compose existing parts, tuning picks the best mean and extends a grid
past a winning edge, cells never mix settings, the report is computed from per-sample tables, and
one tiny study runs end to end through ``equireg predict``."""

import csv
import json

import pytest

from benchmarks import report, runner, study
from benchmarks.study import StudyError, all_studies


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Studies, tables, runs and tuned parts under tmp_path (the repo's configs stay read-only
    except configs/tuned, which is redirected by copying the tree)."""
    import shutil

    configs = tmp_path / "configs"
    shutil.copytree(study.CONFIGS, configs)
    (tmp_path / "studies").mkdir()
    monkeypatch.setattr(study, "CONFIGS", configs)
    monkeypatch.setattr(study, "STUDIES", tmp_path / "studies")
    monkeypatch.setattr(study, "REPO", tmp_path)
    monkeypatch.setattr(runner, "REPO", tmp_path)
    monkeypatch.setattr(runner, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(runner, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(report, "RESULTS", tmp_path / "results")
    return tmp_path


def write_study(root, name, text):
    (root / "studies" / f"{name}.yaml").write_text(text)
    return study.load(name)


def test_every_shipped_study_loads_and_its_test_cells_compose_existing_parts():
    """Method, base, task and extra parts exist; tuned parts exist or are written by the study's tuning."""
    studies = all_studies()
    assert {"mnist32_quality", "mnist32_frequency", "cost", "peer_deepinv_dps"} <= {s.name for s in studies}
    for s in studies:
        if s.kind != "restoration":
            continue
        written = {st.writes.format(task=t, steps=n) for st in s.tune for t in s.tasks for n in st.steps or s.steps}
        for cell in s.test_cells() + s.test_cells(quick=True):
            missing = [t for t in cell.tuned if not (study.CONFIGS / "tuned" / s.dataset / f"{t}.yaml").is_file()]
            assert set(missing) <= written, (cell.name, missing)
            if not missing:
                cell.parts()


def test_every_tuned_part_has_one_study_that_writes_it():
    """Two studies tuning into the same file would silently change each other's cells (the hash
    follows the file's content): every tuned part is written by exactly one study."""
    from collections import defaultdict

    writers = defaultdict(set)
    for s in all_studies():
        for st in s.tune if s.kind == "restoration" else []:
            for t in s.stage_tasks(st):
                for n in st.steps or s.steps:
                    writers[(s.dataset, st.writes.format(task=t, steps=n))].add(s.name)
    shared = {part: names for part, names in writers.items() if len(names) > 1}
    assert not shared, shared


def test_bad_specs_name_the_file_and_the_key(sandbox):
    with pytest.raises(StudyError, match="no study 'nope'"):
        study.load("nope")
    with pytest.raises(StudyError, match=r"unknown keys \['stepz'\]"):
        write_study(sandbox, "bad", "title: t\ndescription: d\nstepz: [1]\n")
    with pytest.raises(StudyError, match="baseline 'x' is not one of the methods"):
        write_study(sandbox, "bad", "title: t\ndescription: d\nbaseline: x\nmethods: {dps: {method: dps}}\n")
    with pytest.raises(StudyError, match=r"method 'dps': unknown keys \['step_factor'\]"):
        write_study(sandbox, "bad", "title: t\ndescription: d\nmethods: {dps: {method: dps, step_factor: 2}}\n")


def test_an_equal_compute_method_runs_more_steps_in_the_same_row(sandbox):
    s = write_study(sandbox, "tiny", SPEC.replace(
        "methods:\n", "methods:\n  dps_x2: {method: dps, tuned: [\"{task}_s{run_steps}\"], steps_factor: 2}\n"))
    cell = next(c for c in s.test_cells() if c.method == "dps_x2")
    assert cell.steps == 2 and cell.run_steps == 4 and cell.tuned == ("gaussian_blur_s4",)
    flags = cell.overrides()
    assert flags[flags.index("--model.init_args.solver.init_args.num_steps") + 1] == "4"


SPEC = """title: tiny
description: two digits, two steps
dataset: mnist32
tasks: [gaussian_blur]
steps: [2]
n: 2
baseline: dps
methods:
  dps: {method: dps, tuned: ["{task}_s{steps}"]}
  equireg: {method: dps_equireg, tuned: ["{task}_s{steps}", "{task}_s50_equireg"]}
tune:
  - {parameter: solver.zeta, methods: [dps], n: 2, grid: [1, 3], extend: 3, max_extensions: 1,
     writes: "{task}_s{steps}"}
"""


def fake_rows(cell, psnr_of_zeta):
    zeta = dict(cell.settings).get("solver.zeta", 1.0)
    return [{"study": cell.study, "split": cell.split, "dataset": cell.dataset, "task": cell.task,
             "method": cell.method, "steps": cell.steps, "settings": json.dumps(dict(cell.settings)),
             "config": cell.config_hash(), "index": i, "psnr": psnr_of_zeta(zeta) + 0.1 * i,
             "ssim": 0.5, "seconds": 1.0, "nfe": 2.0, "device": "CPU"} for i in range(cell.n)]


def test_tuning_extends_past_a_winning_edge_and_writes_the_tuned_part(sandbox, monkeypatch):
    s = write_study(sandbox, "tiny", SPEC)
    ran = []

    def fake(cell, quick=False, batch_size=None, allow_diverged=False):
        ran.append(dict(cell.settings)["solver.zeta"])
        rows = fake_rows(cell, lambda z: -abs(z - 9.0))  # best at 9: past the grid's top edge
        runner.write_rows(runner.cell_file(cell), rows)
        return rows

    monkeypatch.setattr(runner, "run_cell", fake)
    runner.run_study(s, only=["tune"])
    assert ran == [1.0, 3.0, 9.0]  # one extension by a factor 3, then interior
    part = sandbox / "configs" / "tuned" / "mnist32" / "gaussian_blur_s2.yaml"
    text = part.read_text()
    assert runner.tuned_value("mnist32", "gaussian_blur_s2", "solver.zeta") == 9.0
    assert "at an edge" in text and "1: -7.95, 3: -5.95, 9: 0.05" in text  # extensions used up at the edge


def test_an_integer_stage_tunes_whole_numbers_and_writes_one(sandbox, monkeypatch):
    """A count (here the phase's Adam steps) is tuned on whole numbers: the listed grid, the
    extension past a winning edge, and the tuned part all hold ints."""
    s = write_study(sandbox, "tiny", SPEC.replace("parameter: solver.zeta,", "parameter: solver.equi_phase_steps, integer: true,")
                    .replace("grid: [1, 3], extend: 3", "grid: [1, 4], extend: 2.6"))
    ran = []

    def fake(cell, quick=False, batch_size=None, allow_diverged=False):
        steps = dict(cell.settings)["solver.equi_phase_steps"]
        ran.append(steps)
        rows = fake_rows(cell, lambda _: -abs(steps - 10))
        runner.write_rows(runner.cell_file(cell), rows)
        return rows

    monkeypatch.setattr(runner, "run_cell", fake)
    runner.run_study(s, only=["tune"])
    assert ran == [1, 4, 10] and all(type(v) is int for v in ran)  # 4 x 2.6 = 10.4 -> 10
    chosen = runner.tuned_value("mnist32", "gaussian_blur_s2", "solver.equi_phase_steps")
    assert chosen == 10 and type(chosen) is int


def test_a_grid_value_whose_samples_diverge_loses_the_selection_and_is_reported(sandbox, monkeypatch):
    """Diverged validation samples (rows without metrics) make their grid value the worst, not an error."""
    s = write_study(sandbox, "tiny", SPEC)

    def fake(cell, quick=False, batch_size=None, allow_diverged=False):
        assert allow_diverged  # tuning cells tolerate divergence; test cells do not
        rows = fake_rows(cell, lambda z: z)  # larger is better, but the top edge diverges
        if dict(cell.settings)["solver.zeta"] >= 9.0:
            rows[1] = {k: v for k, v in rows[1].items() if k not in ("psnr", "ssim")} | {"diverged_step": 3}
        runner.write_rows(runner.cell_file(cell), rows)
        return rows

    monkeypatch.setattr(runner, "run_cell", fake)
    runner.run_study(s, only=["tune"])
    assert runner.tuned_value("mnist32", "gaussian_blur_s2", "solver.zeta") == 3.0
    assert "9: diverged" in (sandbox / "configs" / "tuned" / "mnist32" / "gaussian_blur_s2.yaml").read_text()
    assert "9: diverged (2)" in report.tuning_table(s)


def test_run_cell_keeps_diverged_tuning_samples_as_rows_and_raises_for_test_cells(sandbox, monkeypatch):
    import equireg_lit.cli

    from dataclasses import replace

    s = write_study(sandbox, "tiny", SPEC)
    cell = replace(s.test_cells()[0], tuned=())

    def fake_main(argv):
        pred = __import__("pathlib").Path(argv[argv.index("--trainer.default_root_dir") + 1]) / "predictions"
        pred.mkdir(parents=True, exist_ok=True)
        (pred / "metrics.csv").write_text("index,psnr,seconds\n0,20.0,1.0\n")
        (pred / "failures.json").write_text(json.dumps({"1": 4}))
        raise SystemExit(1)

    monkeypatch.setattr(equireg_lit.cli, "main", fake_main)
    monkeypatch.setattr(runner, "_add_digit_correct", lambda samples, folder: None)
    with pytest.raises(SystemExit):
        runner.run_cell(cell)
    rows = runner.run_cell(cell, allow_diverged=True)
    assert [(r["index"], r.get("psnr"), r.get("diverged_step")) for r in rows] == [(0, 20.0, None), (1, None, 4)]


def test_a_cell_another_study_ran_with_the_same_hash_is_reused_not_rerun(sandbox, monkeypatch):
    """Same parts, weights and overrides (the hash) and split: the rows are copied and relabelled;
    a different setting (another hash) or too few rows runs the cell."""
    import equireg_lit.cli
    from dataclasses import replace

    first = write_study(sandbox, "tiny", SPEC)
    second = write_study(sandbox, "tiny2", SPEC.replace("dps: {method", "baseline_dps: {method")
                         .replace("baseline: dps", "baseline: baseline_dps").replace("[dps]", "[baseline_dps]"))
    cell = replace(first.test_cells()[0], tuned=())
    other = replace(second.test_cells()[0], tuned=())
    assert (cell.method, other.method) == ("dps", "baseline_dps") and cell.config_hash() == other.config_hash()
    runner.write_rows(runner.cell_file(cell), fake_rows(cell, lambda z: 20.0))
    ran = []
    monkeypatch.setattr(equireg_lit.cli, "main", lambda argv: ran.append(argv) or (_ for _ in ()).throw(SystemExit(3)))
    rows = runner.run_cell(other)
    assert not ran and [r["psnr"] for r in rows] == [20.0, 20.1]
    assert {(r["study"], r["method"]) for r in rows} == {("tiny2", "baseline_dps")}
    assert runner.read_rows(runner.cell_file(other)) == rows  # the study keeps its own copy
    with pytest.raises(SystemExit):  # another zeta: another hash, nothing to share
        runner.run_cell(replace(other, settings=(("solver.zeta", 7.0),)))
    with pytest.raises(SystemExit):  # more samples than the other study ran
        runner.run_cell(replace(other, n=3))
    assert len(ran) == 2


def test_a_retuned_part_gives_new_cells_and_the_report_uses_only_current_ones(sandbox, monkeypatch):
    s = write_study(sandbox, "tiny", SPEC)
    tuned = sandbox / "configs" / "tuned" / "mnist32" / "gaussian_blur_s2.yaml"
    tuned.write_text("model: {init_args: {solver: {init_args: {zeta: 3.0}}}}\n")
    dps, reg = s.test_cells()
    old_hash = dps.config_hash()
    runner.write_rows(runner.cell_file(dps), [dict(r, psnr=10.0 + r["index"]) for r in fake_rows(dps, lambda z: 0)])
    runner.write_rows(runner.cell_file(reg), [dict(r, psnr=10.5 + r["index"], seconds=2.0, nfe=4.0)
                                              for r in fake_rows(reg, lambda z: 0)])
    table, devices = report.restoration_table(s)
    base = next(line for line in table.splitlines() if line.startswith("| gaussian_blur | 2 | dps |"))
    row = next(line for line in table.splitlines() if line.startswith("| gaussian_blur | 2 | equireg |"))
    assert "psnr 10.50 ± 0.50" in base and "1.00 (2 nfe)" in base
    assert "+0.50 [+0.50, +0.50]" in row and "2/2" in row and "2.00 (4 nfe)" in row and devices == {"CPU"}
    assert "zeta 3.0, alpha" in row
    tuned.write_text("model: {init_args: {solver: {init_args: {zeta: 4.0}}}}\n")
    assert s.test_cells()[0].config_hash() != old_hash
    assert "not run yet" in report.restoration_table(s)[0]  # the old rows are not reused
    runner.rebuild_table("tiny")
    with open(sandbox / "results" / "tiny" / "samples.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {"study", "task", "method", "steps", "index", "psnr", "device"} <= set(rows[0])


def test_a_group_whose_baseline_ran_is_reported_with_its_unfinished_cells_marked(sandbox):
    """A method retuned after its group ran (a new hash, rows to come) leaves the baseline's and
    the other methods' final rows in the table, its own marked, instead of hiding the group."""
    s = write_study(sandbox, "tiny", SPEC)
    (sandbox / "configs" / "tuned" / "mnist32" / "gaussian_blur_s2.yaml").write_text(
        "model: {init_args: {solver: {init_args: {zeta: 3.0}}}}\n")
    dps, reg = s.test_cells()
    runner.write_rows(runner.cell_file(dps), fake_rows(dps, lambda z: 20.0))
    table = report.restoration_table(s)[0]
    lines = table.splitlines()
    base = next(line for line in lines if line.startswith("| gaussian_blur | 2 | dps |"))
    row = next(line for line in lines if line.startswith("| gaussian_blur | 2 | equireg |"))
    assert "psnr 20.05 ± 0.05" in base and "zeta 3.0, alpha" in row and "| not run yet |" in row
    assert row.count("|") == lines[0].count("|") and "1 cell(s) not run yet" in table
    (sandbox / "configs" / "tuned" / "mnist32" / "gaussian_blur_s50_equireg.yaml").unlink()
    row = next(line for line in report.restoration_table(s)[0].splitlines() if "| equireg |" in line)
    assert "| waiting on tuning |" in row


def test_the_effect_figure_plots_each_methods_paired_difference_and_goes_when_unsupported(sandbox):
    """Two step counts with both methods done: the section links a figure of the paired
    differences, the same bytes on a rerun; with one method's rows gone it has nothing to plot, and
    the stale file is removed."""
    from benchmarks import figures

    s = write_study(sandbox, "tiny", SPEC.replace("steps: [2]", "steps: [2, 3]"))
    for steps in (2, 3):
        (sandbox / "configs" / "tuned" / "mnist32" / f"gaussian_blur_s{steps}.yaml").write_text(
            "model: {init_args: {solver: {init_args: {zeta: 3.0}}}}\n")
    cells = s.test_cells()
    for cell in cells:
        gain = 1.0 if cell.method == "equireg" else 0.0
        runner.write_rows(runner.cell_file(cell), fake_rows(cell, lambda z, g=gain + cell.steps: 20.0 + g))
    assert figures.effects(s) == {"gaussian_blur": {"equireg": [(2, 1.0, 1.0, 1.0), (3, 1.0, 1.0, 1.0)]}}
    docs = sandbox / "docs"
    text = report.section(s, docs)
    png = sandbox / "results" / "tiny" / "effects.png"
    assert "](../results/tiny/effects.png)" in text and png.read_bytes()[:4] == b"\x89PNG"
    first = png.read_bytes()
    report.section(s, docs)
    assert png.read_bytes() == first
    for cell in cells:
        if cell.method == "equireg":
            runner.cell_file(cell).unlink()
    assert "effects.png" not in report.section(s, docs) and not png.exists()


def test_secondary_metrics_are_reported_per_method_and_missing_ones_are_marked(sandbox):
    s = write_study(sandbox, "tiny", SPEC + "secondary_metrics: [residual]\n")
    tuned = sandbox / "configs" / "tuned" / "mnist32" / "gaussian_blur_s2.yaml"
    tuned.write_text("model: {init_args: {solver: {init_args: {zeta: 3.0}}}}\n")
    dps, reg = s.test_cells()
    runner.write_rows(runner.cell_file(dps), [dict(r, residual=1.0 + 2 * r["index"]) for r in fake_rows(dps, lambda z: 0)])
    runner.write_rows(runner.cell_file(reg), fake_rows(reg, lambda z: 0))  # an older cell without the metric
    table = report.restoration_table(s)[0]
    assert "| residual |" in table.splitlines()[0]
    base = next(line for line in table.splitlines() if line.startswith("| gaussian_blur | 2 | dps |"))
    row = next(line for line in table.splitlines() if line.startswith("| gaussian_blur | 2 | equireg |"))
    assert "| 2 ± 1 |" in base and "| — |" in row


def test_a_tiny_study_runs_end_to_end_through_predict_and_resumes(sandbox, monkeypatch):
    tuned = sandbox / "configs" / "tuned" / "mnist32" / "gaussian_blur_s2.yaml"
    tuned.write_text("model: {init_args: {solver: {init_args: {zeta: 3.0}}}}\n")
    s = write_study(sandbox, "tiny", SPEC.split("tune:")[0])
    runner.run_study(s)
    rows = runner.read_rows(sandbox / "results" / "tiny" / "samples.csv")
    assert len(rows) == 4 and {r["method"] for r in rows} == {"dps", "equireg"}
    assert all(r["steps"] == 2 and r["split"] == "test" and "psnr" in r and "digit_correct" in r for r in rows)
    from benchmarks.report import restoration_table

    table, _ = restoration_table(s)
    header, *body = [line for line in table.splitlines() if line.startswith("| ")]
    column = header.split(" | ").index("time / network")
    own = [float(line.split(" | ")[column]) for line in body]
    assert len(own) == 2 and all(x >= 1.0 for x in own)  # a run's time includes its network time
    called = []
    monkeypatch.setattr("equireg_lit.cli.main", lambda argv: called.append(argv))
    runner.run_study(s)  # every cell's table is complete: nothing runs again
    assert called == []


def test_a_cell_another_live_process_is_running_is_skipped_by_the_test_loop_and_waited_for_by_tuning(sandbox, monkeypatch):
    """Two runners on one study (say two shells with overlapping --cells globs) never run one cell
    twice: the test loop moves on past a cell whose predictions folder a live process holds, and a
    tuning walk, which needs the rows, waits until the holder has finished them."""
    import subprocess
    import sys

    import equireg_lit.cli
    from equireg_lit.data.folder import PredictionFolder

    tuned = sandbox / "configs" / "tuned" / "mnist32" / "gaussian_blur_s2.yaml"
    tuned.write_text("model: {init_args: {solver: {init_args: {zeta: 3.0}}}}\n")
    s = write_study(sandbox, "tiny", SPEC.split("tune:")[0])
    dps, reg = s.test_cells()
    busy = PredictionFolder.of_run(runner.RUNS / "tiny" / "test" / f"{dps.name}-{dps.config_hash()}")
    busy.root.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy.lock_path.write_text(json.dumps({"pid": other.pid, "host": __import__("socket").gethostname()}))
        ran = []

        def fake_main(argv):
            ran.append(argv[argv.index("--trainer.default_root_dir") + 1])
            pred = __import__("pathlib").Path(ran[-1]) / "predictions"
            pred.mkdir(parents=True, exist_ok=True)
            (pred / "metrics.csv").write_text("index,psnr,seconds\n0,20.0,1.0\n1,21.0,1.0\n")

        monkeypatch.setattr(equireg_lit.cli, "main", fake_main)
        monkeypatch.setattr(runner, "_add_digit_correct", lambda samples, folder: None)
        runner.run_study(s)
        assert len(ran) == 1 and reg.name in ran[0]  # the busy DPS cell was left to its holder
        assert not runner.cell_file(dps).exists() and busy.lock_path.exists()

        def holder_finishes(seconds):  # the holder writes the rows and lets go while tuning waits
            runner.write_rows(runner.cell_file(dps), fake_rows(dps, lambda z: 19.0))
            busy.lock_path.unlink()

        monkeypatch.setattr(runner.time, "sleep", holder_finishes)
        rows = runner.run_cell(dps)
        assert [r["psnr"] for r in rows] == [19.0, 19.1] and len(ran) == 1  # read, not rerun
    finally:
        other.kill()
        other.wait()


def test_the_cell_hash_ignores_comments_and_follows_weight_files(sandbox):
    s = write_study(sandbox, "tiny", SPEC)
    tuned = sandbox / "configs" / "tuned" / "mnist32" / "gaussian_blur_s2.yaml"
    tuned.write_text("model: {init_args: {solver: {init_args: {zeta: 3.0}}}}\n")
    cell = s.test_cells()[0]
    first = cell.config_hash()
    tuned.write_text("# chosen on validation over a wider grid\nmodel:\n  init_args: {solver: {init_args: {zeta: 3.0}}}\n")
    assert cell.config_hash() == first  # the same settings, another header
    weights = sandbox / "prior.safetensors"
    weights.write_bytes(b"one")
    base = sandbox / "configs" / "base" / "mnist32.yaml"
    base.write_text(base.read_text().replace("weights: mnist32", f"weights: {weights}"))
    with_file = cell.config_hash()
    weights.write_bytes(b"two")  # a retrained prior under the same name
    assert cell.config_hash() != with_file
    # a latent diffusion directory: any file inside it counts
    folder = sandbox / "ldm"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text("{}")
    base.write_text(base.read_text().replace(f"weights: {weights}", f"weights: {folder}"))
    with_dir = cell.config_hash()
    (folder / "unet" / "config.json").write_text('{"retrained": true}')
    assert cell.config_hash() != with_dir


def test_gradient_alignment_is_one_for_a_penalty_pointing_at_the_truth_and_minus_one_away():
    """The payoff predictor's sign convention: cos(grad R(x0_hat), x0_hat - x)."""
    import torch

    from benchmarks.probe_payoff import alignment

    class Distance:
        def __init__(self, target, sign):
            self.target, self.sign = target, sign

        def mean_penalty(self, x):
            return self.sign * ((x - self.target) ** 2).flatten(1).sum(1)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1, 8, 8, generator=g)
    x0 = x + torch.randn(3, 1, 8, 8, generator=g)
    assert alignment(Distance(x, 1.0), x0, x) == pytest.approx(1.0, abs=1e-6)
    assert alignment(Distance(x, -1.0), x0, x) == pytest.approx(-1.0, abs=1e-6)
    other = x0 + torch.randn(3, 1, 8, 8, generator=g)  # a minimum elsewhere: between -1 and 1
    assert -1.0 < alignment(Distance(other, 1.0), x0, x) < 1.0


def test_the_payoff_study_measures_every_candidate_of_the_selection_report():
    import yaml

    from benchmarks.probe_payoff import payoff_name

    blocks = yaml.safe_load((study.CONFIGS / "test" / "select_mnist32.yaml").read_text())["model"]["init_args"]["candidates"]
    payoff = study.load("mnist32_probe_payoff")
    assert {payoff_name(c) for c in blocks} == set(payoff.methods) - {payoff.baseline}


def test_the_tuning_table_lists_tuned_parameters_not_a_methods_fixed_settings(sandbox, monkeypatch):
    s = write_study(sandbox, "tiny", SPEC.replace(
        '  dps: {method: dps, tuned: ["{task}_s{steps}"]}',
        '  dps: {method: dps, tuned: ["{task}_s{steps}"], set: {regularizer.group: shift}}'))

    def fake(cell, quick=False, batch_size=None, allow_diverged=False):
        rows = fake_rows(cell, lambda z: -abs(z - 3.0))
        runner.write_rows(runner.cell_file(cell), rows)
        return rows

    monkeypatch.setattr(runner, "run_cell", fake)
    runner.run_study(s, only=["tune"])
    table = report.tuning_table(s)
    assert "solver.zeta" in table and "regularizer.group" not in table and "shift" not in table


def test_pde_reference_table_lists_every_published_number_and_says_what_did_not_run(sandbox):
    """With no study tables every row of ours reads "not run", and the
    published numbers stand next to them unchanged."""
    from benchmarks import pde_reference

    text = pde_reference.table()
    rows = [line for line in text.splitlines() if line.startswith("| darcy") or line.startswith("| helmholtz")
            or line.startswith("| navier_stokes")]
    assert len(rows) == 6 and all("not run" in r for r in rows)
    assert "| darcy | forward | not run |" in text and "| navier_stokes | inverse | not run |" in text
    assert "| 2.13 % | 12.64 % |" in text and "| 17.16 % | 19.07 % |" in text and "| 3.32 % | 3.78 % |" in text


def test_testbed_comparison_reads_each_grids_paired_gain_and_marks_what_is_missing(sandbox):
    from benchmarks import testbed_comparison

    s = write_study(sandbox, "mnist32_quality", SPEC.replace("  equireg:", "  equireg_denoiser:"))
    (sandbox / "configs" / "tuned" / "mnist32" / "gaussian_blur_s2.yaml").write_text(
        "model: {init_args: {solver: {init_args: {zeta: 3.0}}}}\n")
    for cell in s.test_cells():
        offset = 20.0 if cell.method == "dps" else 21.0
        runner.write_rows(runner.cell_file(cell), fake_rows(cell, lambda z: offset))
    text = testbed_comparison.table()
    line = next(x for x in text.splitlines() if x.startswith("| gaussian_blur | 2 |"))
    assert line.split(" | ")[2] == "+1.00 [+1.00, +1.00] (2/2)"  # MNIST denoiser column
    assert line.split(" | ")[3:] == ["—", "—", "—", "— |"]  # other grids absent, probe not a method here


def test_tuning_table_ignores_validation_cells_of_an_earlier_tuning(sandbox):
    """A validation table whose hash is not the cell's hash today (an earlier part or prior) is
    history: the tuning table shows only the current cells' means."""
    s = write_study(sandbox, "tiny", SPEC)
    cell = s.tuning_cell(s.tune[0], "dps", "gaussian_blur", 2, 3.0)
    current = runner.cell_file(cell)
    runner.write_rows(current, fake_rows(cell, lambda z: 25.0))
    runner.write_rows(current.with_name(f"{cell.name}-0123456789.csv"), fake_rows(cell, lambda z: 11.0))
    table = report.tuning_table(s)
    assert "3: 25.05 (2)" in table and "11." not in table


def test_task_operator_follows_composed_task_files():
    """natural32's tasks compose MNIST's (both 1x32x32): the same operator comes back."""
    import torch

    nat, mnist = study.task_operator("gaussian_blur", "natural32"), study.task_operator("gaussian_blur", "mnist32")
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert type(nat) is type(mnist) and torch.equal(nat.A(x), mnist.A(x))


def test_status_counts_done_partial_and_waiting_cells_and_estimates_time_left(sandbox):
    from benchmarks.progress import status_lines, study_progress

    s = write_study(sandbox, "tiny", SPEC)
    (p,) = study_progress(s)
    # nothing run: the tuning group's grid (zeta 1, 3) is 2 x 2 samples; both test cells wait on it
    assert (p.tune_done, p.tune_all, p.test_done, p.test_all, p.samples_left) == (0, 1, 0, 2, 8)
    assert p.waiting == ["gaussian_blur_dps_s2", "gaussian_blur_equireg_s2"] and p.seconds_left is None
    for zeta in (1.0, 3.0, 9.0):  # 3 wins at the grid's edge, so the runner also ran one value past it
        cell = s.tuning_cell(s.tune[0], "dps", "gaussian_blur", 2, zeta)
        runner.write_rows(runner.cell_file(cell), fake_rows(cell, lambda z: -abs(z - 3.0)))
    (sandbox / "configs" / "tuned" / "mnist32" / "gaussian_blur_s2.yaml").write_text(
        "model: {init_args: {solver: {init_args: {zeta: 3.0}}}}\n")
    dps, reg = s.test_cells()
    runner.write_rows(runner.cell_file(dps), fake_rows(dps, lambda z: 0))
    runner.write_rows(runner.cell_file(reg), fake_rows(reg, lambda z: 0)[:1])  # stopped after one sample
    (p,) = study_progress(s)
    assert (p.tune_done, p.test_done, p.test_all, p.samples_left, p.waiting) == (1, 1, 2, 1, [])
    assert p.seconds_left == 1.0  # one sample left at the median 1 s per sample of the finished rows
    lines = status_lines(s)
    assert "tuning 1/1 groups, test 1/2 cells; 1 samples left" in lines[1] and "resume with" in lines[-1]
    runner.write_rows(runner.cell_file(reg), fake_rows(reg, lambda z: 0))
    assert "complete" in status_lines(s)[-1]
    assert "gaussian_blur_equireg_s2" not in status_lines(s, "*_dps_*")[1]
    from benchmarks.progress import summary_line

    assert summary_line(s).split()[1:] == ["complete", "(2", "test", "cells)"]


def test_status_counts_samples_a_running_cell_has_finished_and_names_its_process(sandbox):
    import os
    import socket

    from benchmarks.progress import status_lines, study_progress
    from equireg_lit.data.folder import PredictionFolder

    (sandbox / "configs" / "tuned" / "mnist32" / "gaussian_blur_s2.yaml").write_text(
        "model: {init_args: {solver: {init_args: {zeta: 3.0}}}}\n")
    s = write_study(sandbox, "tiny", SPEC.split("tune:")[0])
    dps, _ = s.test_cells()
    folder = PredictionFolder.of_run(runner.cell_root(dps))
    folder.samples.mkdir(parents=True)
    (folder.samples / "00000.json").write_text(json.dumps({"index": 0}))  # one of its two samples is done
    (p,) = study_progress(s)
    assert p.samples_left == 3 and p.running == []  # 1 + 2 left, and nobody holds the folder
    folder.lock_path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    (p,) = study_progress(s)
    assert p.running == [f"gaussian_blur_dps_s2 (1/2, process {os.getpid()} on {socket.gethostname()})"]
    assert any(line.strip().startswith("running: gaussian_blur_dps_s2") for line in status_lines(s))


def test_status_follows_a_refining_stage_centred_on_the_part_it_rewrites(sandbox, monkeypatch):
    """A second stage whose grid centres on the part the first stage writes (and then rewrites it
    with its own choice): status walks the grids as the runner did, so a finished tuning reads as
    done instead of asking for cells around the final value."""
    from benchmarks.progress import study_progress

    refine = SPEC + """  - {parameter: solver.zeta, methods: [dps], n: 2, grid: {around: "{task}_s{steps}", factors: [0.6, 1, 1.7]},
     extend: 3, max_extensions: 1, writes: "{task}_s{steps}"}
"""
    s = write_study(sandbox, "tiny", refine)
    ran = []

    def fake(cell, quick=False, batch_size=None, allow_diverged=False):
        ran.append(dict(cell.settings)["solver.zeta"])
        rows = fake_rows(cell, lambda z: -abs(z - 4.5))
        runner.write_rows(runner.cell_file(cell), rows)
        return rows

    monkeypatch.setattr(runner, "run_cell", fake)
    runner.run_study(s, only=["tune"])
    assert ran == [1.0, 3.0, 9.0, 1.8, 3.0, 5.1, 15.0]  # the second grid around the first choice, 3
    assert runner.tuned_value("mnist32", "gaussian_blur_s2", "solver.zeta") == 5.1
    (p,) = study_progress(s)
    assert (p.tune_done, p.tune_all) == (2, 2) and p.samples_left == 2 * 2  # the two test cells only


def test_a_script_command_whose_output_exists_is_skipped(sandbox):
    """``{run, creates}``: a fit whose export a later command reads runs once; a rerun of the study
    skips it while the export exists (the report says so) and always runs plain commands."""
    s = write_study(sandbox, "script", """title: a script
description: two commands
kind: script
commands: [{run: "python -c \\"open('made.txt', 'a').write('x')\\"", creates: made.txt},
           "python -c \\"open('log.txt', 'a').write('y')\\""]
""")
    import benchmarks.runner as r

    r.run_study(s)
    r.run_study(s)
    assert (sandbox / "made.txt").read_text() == "x" and (sandbox / "log.txt").read_text() == "yy"
    assert "unless `made.txt` exists" in report.section(s)
    with pytest.raises(StudyError, match="a command is a line or"):
        write_study(sandbox, "bad", "title: t\ndescription: d\nkind: script\ncommands: [{creates: x}]\n")


def test_a_method_restricted_to_some_tasks_runs_and_is_reported_only_there(sandbox):
    """PSLD needs a linear operator: ``tasks:`` on a method keeps it (and its tuning) off the others."""
    spec = (SPEC.replace("tasks: [gaussian_blur]", "tasks: [gaussian_blur, sr4]")
            .replace('equireg: {method: dps_equireg, tuned', 'equireg: {method: dps_equireg, tasks: [sr4], tuned'))
    s = write_study(sandbox, "tiny", spec)
    for task in ("gaussian_blur", "sr4"):
        (sandbox / "configs" / "tuned" / "mnist32" / f"{task}_s2.yaml").write_text(
            "model: {init_args: {solver: {init_args: {zeta: 3.0}}}}\n")
    cells = s.test_cells()
    assert [(c.task, c.method) for c in cells] == [("gaussian_blur", "dps"), ("sr4", "dps"), ("sr4", "equireg")]
    for c in cells:
        runner.write_rows(runner.cell_file(c), fake_rows(c, lambda z: 0))
    table = report.restoration_table(s)[0]
    assert "| sr4 | 2 | equireg |" in table and "| gaussian_blur | 2 | equireg |" not in table
    assert "| gaussian_blur | 2 | dps |" in table and "not run yet" not in table
    with pytest.raises(StudyError, match="tasks \\['hdr'\\] are not among the study's tasks"):
        write_study(sandbox, "bad", spec.replace("tasks: [sr4]", "tasks: [hdr]"))


def test_the_sampler_cost_table_has_every_sampler_alone_and_with_equireg(tmp_path, monkeypatch):
    """One interleaved run per sampler and setting; network evaluations follow each sampler's budget
    (DPS and DiffPIR: one per step; SITCOM: K per outer step; DAPS: the ODE steps per level)."""
    import torch

    from benchmarks import cost
    from equireg_lit.diffusion import DiffusersUNetPrior
    from equireg_lit.physics import BoxInpainting, simulate
    from equireg_lit.regularizer import EquiReg, PriorDenoiser
    from equireg_lit.solvers import DAPS, DPS, SITCOM, DiffPIR

    monkeypatch.setattr(cost, "SAMPLERS", {
        "DPS": lambda: DPS(num_steps=2), "DiffPIR": lambda: DiffPIR(num_steps=2),
        "SITCOM": lambda: SITCOM(num_steps=2, consistency_steps=3, equi_phase_steps=1, stop_at_noise_level=False),
        "DAPS": lambda: DAPS(annealing_steps=2, ode_steps=2, langevin_steps=1)})
    prior = DiffusersUNetPrior(weights="mnist32").eval().requires_grad_(False)
    x = torch.zeros(1, 1, 32, 32)
    op = BoxInpainting()
    y = simulate(op, x, [torch.Generator().manual_seed(0)])
    reg = EquiReg(PriorDenoiser(20).bind(prior), "hflip", form="equi_plus", alpha=0.01)
    cost.sampler_costs(prior, op, x, y, reg, 1, tmp_path, torch.device("cpu"))
    rows = {r["sampler"]: r for r in json.loads((tmp_path / "sampler_cost.json").read_text())["rows"]}
    assert {k: r["nfe"] for k, r in rows.items()} == {"DPS": 2, "DiffPIR": 2, "SITCOM": 6, "DAPS": 4}
    assert all(r["time_over_network"] >= 1.0 and r["equireg_over_sampler"] > 0 for r in rows.values())
    assert (tmp_path / "sampler_cost.md").read_text().count("\n| ") == 4  # one row per sampler


def test_write_result_writes_both_files_and_prints_the_table(tmp_path, capsys):
    from benchmarks.stats import write_result

    stem = tmp_path / "deeper" / "result"
    write_result(stem, {"rows": [{"psnr": 30.5}]}, ["| a |", "|---|", "| 1 |"])
    assert json.loads(stem.with_suffix(".json").read_text()) == {"rows": [{"psnr": 30.5}]}
    assert stem.with_suffix(".md").read_text() == "| a |\n|---|\n| 1 |\n"
    assert "| 1 |" in capsys.readouterr().out
    assert sorted(p.name for p in stem.parent.iterdir()) == ["result.json", "result.md"]  # no temporary left
