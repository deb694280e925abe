"""The benchmark report is generated from result JSON (never typed): cells that were not run say so."""

import json

from benchmarks.run import report


def row(task, mean, lo, hi, alpha):
    d = {"mean_diff": mean, "ci95": [lo, hi], "n": 4, "wins": 2}
    return {"task": task, "steps": 20, "zeta": 10.0, "alpha": alpha, "n": 4,
            "dps": {"psnr": [15.0, 0.3], "ssim": [0.5, 0.01]}, "equireg": {"psnr": [15.1, 0.3], "ssim": [0.5, 0.01]},
            "diff": {"psnr": d, "ssim": d}, "digit_accuracy": {"dps": 0.5, "equireg": 0.75}}


def test_report_table_and_plot_from_results(tmp_path):
    (tmp_path / "mnist32_compare_s20.json").write_text(json.dumps({"rows": [row("box_inpainting", 0.25, -0.1, 0.6, 0.01)]}))
    (tmp_path / "mnist32_compare_s20_probe.json").write_text(json.dumps({"rows": [row("box_inpainting", -1.5, -2.0, -1.0, 0.001)]}))
    report(tmp_path, ["box_inpainting", "sr4"], [20, 50])
    md = (tmp_path / "mnist32_quality.md").read_text().splitlines()
    box20 = next(line for line in md if line.startswith("| box_inpainting | 20 |"))
    assert "-1.50 [-2.00, -1.00]" in box20 and "+0.25 [-0.10, +0.60]" in box20 and "0.001 / 0.01" in box20
    assert "0.50 / 0.75 / 0.75" in box20
    assert any(line.startswith("| sr4 | 50 |") and "not run" in line for line in md)
    assert (tmp_path / "mnist32_quality.png").stat().st_size > 0
    cells = json.loads((tmp_path / "mnist32_quality.json").read_text())
    assert len(cells) == 4 and cells[0]["probe"]["alpha"] == 0.001
