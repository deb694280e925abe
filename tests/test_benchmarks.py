"""The benchmark report is generated from result JSON (never typed): cells that were not run say so."""

import json

from benchmarks.run import report


def row(task, mean, lo, hi, alpha, machine="x86_64, 1 torch threads, torch 2.14.1, CPU only"):
    d = {"mean_diff": mean, "ci95": [lo, hi], "n": 4, "wins": 2}
    return {"task": task, "steps": 20, "zeta": 10.0, "alpha": alpha, "n": 4,
            "dps": {"psnr": [15.0, 0.3], "ssim": [0.5, 0.01]}, "equireg": {"psnr": [15.1, 0.3], "ssim": [0.5, 0.01]},
            "diff": {"psnr": d, "ssim": d}, "digit_accuracy": {"dps": 0.5, "equireg": 0.75},
            "seconds_per_sample": {"dps": 1.0, "equireg": 1.5}, "machine": machine}


def test_report_table_and_plot_from_results(tmp_path):
    (tmp_path / "mnist32_compare_s20.json").write_text(json.dumps({"rows": [row("box_inpainting", 0.25, -0.1, 0.6, 0.01)]}))
    (tmp_path / "mnist32_compare_s20_probe.json").write_text(json.dumps({"rows": [row("box_inpainting", -1.5, -2.0, -1.0, 0.001)]}))
    report(tmp_path, ["box_inpainting", "sr4"], [20, 50])
    md = (tmp_path / "mnist32_quality.md").read_text().splitlines()
    box20 = next(line for line in md if line.startswith("| box_inpainting | 20 |"))
    assert "-1.50 [-2.00, -1.00]" in box20 and "+0.25 [-0.10, +0.60]" in box20 and "0.001 / 0.01" in box20
    assert "0.50 / 0.75 / 0.75" in box20 and box20.endswith("| CPU |")
    assert any(line.startswith("| sr4 | 50 |") and "not run" in line for line in md)
    assert (tmp_path / "mnist32_quality.png").stat().st_size > 0
    cells = json.loads((tmp_path / "mnist32_quality.json").read_text())
    assert len(cells) == 4 and cells[0]["probe"]["alpha"] == 0.001


def test_compare_results_merge_across_processes_and_name_their_machine(tmp_path, monkeypatch):
    """Per-task compare processes (one per task on a GPU) merge their rows into one file."""
    import argparse

    from benchmarks import mnist32_restoration as mr

    monkeypatch.setattr(mr, "OUT_DIR", tmp_path)
    monkeypatch.setattr(mr, "RUNS_DIR", tmp_path / "runs")
    args = argparse.Namespace(steps=20, n=4, tune_steps=None, alpha_steps=50)
    gpu = "x86_64, 2 torch threads, torch 2.11.0, NVIDIA H200"
    with mr.results_lock():
        mr.write_compare([row("box_inpainting", 0.25, -0.1, 0.6, 0.01)], args)
    mr.write_compare([row("hdr", -0.1, -0.2, 0.0, 0.1, machine=gpu)], args)
    res = json.loads((tmp_path / "mnist32_compare_s20.json").read_text())
    assert [r["task"] for r in res["rows"]] == ["box_inpainting", "hdr"] and gpu in res["machines"]
    md = (tmp_path / "mnist32_compare_s20.md").read_text()
    assert "| hdr | 20 |" in md and "NVIDIA H200 |" in md and "--tasks box_inpainting hdr" in md
    report(tmp_path, ["box_inpainting", "hdr"], [20])
    quality = (tmp_path / "mnist32_quality.md").read_text()
    assert any(line.startswith("| hdr | 20 |") and line.endswith("| NVIDIA H200 |") for line in quality.splitlines())


def test_tune_extends_an_earlier_grid_and_compare_skips_up_to_date_cells(tmp_path, monkeypatch):
    """Extending a tuning grid measures only the new values; a compare whose result already has
    the tuned zeta, alpha and n runs nothing."""
    import argparse

    from benchmarks import mnist32_restoration as mr

    calls = []

    def fake_run(task, equireg, steps, split, n, zeta, alpha, extra=None, tag=""):
        calls.append((equireg, zeta, alpha))
        psnr = 20 + zeta - (0 if alpha is None else abs(alpha - 0.1))  # larger zeta wins; alpha 0.1 wins
        return {i: {"psnr": psnr, "ssim": 0.5, "seconds": 1.0} for i in range(n)}

    monkeypatch.setattr(mr, "RESULTS", tmp_path)
    monkeypatch.setattr(mr, "OUT_DIR", tmp_path)
    monkeypatch.setattr(mr, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(mr, "run", fake_run)
    tune = lambda zetas, alphas: mr.tune(argparse.Namespace(task="hdr", steps=100, n=4, zetas=zetas, alphas=alphas))  # noqa: E731
    tune([0.5, 1.5], [0.01, 0.1])
    assert mr.load_tuning("hdr", 100)["best_zeta"] == 1.5 and len(calls) == 4
    calls.clear()
    tune([4.5], [])  # past the winning edge: one new DPS run, alphas re-measured at the new zeta
    t = mr.load_tuning("hdr", 100)
    assert t["best_zeta"] == 4.5 and sorted(t["dps"]) == ["0.5", "1.5", "4.5"] and t["best_alpha"] == 0.1
    assert calls == [(False, 4.5, None), (True, 4.5, 0.01), (True, 4.5, 0.1)]
    calls.clear()
    tune([4.5], [0.01])  # nothing new
    assert calls == []

    monkeypatch.setattr(mr, "digit_accuracy", lambda *a: 1.0)
    args = argparse.Namespace(tasks=["hdr"], steps=100, n=4, tune_steps=None, alpha_steps=None, recompute=False)
    mr.compare(args)
    assert len(calls) == 2
    calls.clear()
    mr.compare(args)
    assert calls == []
    args.recompute = True
    mr.compare(args)
    assert len(calls) == 2
