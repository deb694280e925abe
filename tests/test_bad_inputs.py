"""The catalogue of bad settings and files: each is refused with one line that names the setting
or file (and the fix), before any sampling, and nothing an earlier run wrote changes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from equireg_lit.cli import main
from tests.conftest import REPO

DEMO = f"{REPO}/configs/predict/demo_gaussian.yaml"
FIT_TINY = f"{REPO}/tests/configs/fit_tiny.yaml"
SOLVER = "--model.init_args.solver.init_args."
REG = "--model.init_args.regularizer.init_args."
OP = "--model.init_args.operator.init_args."
DATA = "--data.init_args."
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file of the run's predictions folder with its size and modification time."""
    folder = root / "predictions"
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished demo run (16 samples) that every case below must leave untouched."""
    root = tmp_path_factory.mktemp("finished")
    main(["predict", "--config", DEMO, "--trainer.default_root_dir", str(root), "--trainer.logger", "false", *QUIET])
    assert json.loads((root / "predictions" / "summary.json").read_text())["num_samples"] == 16
    return root


def refused(capsys, args: list[str], code: int = 2) -> str:
    """Run ``equireg`` with ``args``; assert it exits with ``code`` and one error line; return that line."""
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Union" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("equireg: error:")]
    assert len(lines) == 1, err
    return lines[0]


def predict_args(root: Path, *extra: str) -> list[str]:
    return ["predict", "--config", DEMO, "--trainer.default_root_dir", str(root), "--trainer.logger", "false",
            *QUIET, *extra]


# (setting overrides, expected message) — each refused when the classes are built, before any work.
CONFIG_CASES = [
    ([f"{SOLVER}zeta", "-1"], r"DPS: zeta must be a finite number in \[0.0, inf\), got -1.0"),
    ([f"{SOLVER}zeta", ".nan"], r"DPS: zeta must be a finite number .*got nan"),
    ([f"{SOLVER}zeta", ".inf"], r"DPS: zeta must be a finite number .*got inf"),
    ([f"{SOLVER}eta", "-3"], r"DPS: eta must be a finite number in \[0.0, 1.0\], got -3.0"),
    ([f"{SOLVER}eta", "1.5"], r"DPS: eta must be .*got 1.5"),
    ([f"{SOLVER}num_steps", "0"], r"DPS: num_steps must be >= 1, got 0"),
    ([f"{SOLVER}num_steps", "5000"], r"PosteriorSampler: solver num_steps 5000 exceeds the prior's 1000 .*1..1000"),
    ([f"{SOLVER}equi_phase_steps", "-1"], r"DPS: equi_phase_steps must be >= 0"),
    ([f"{SOLVER}equi_phase_lr", "0"], r"DPS: equi_phase_lr must be a finite number in \(0.0, inf\)"),
    ([f"{SOLVER}divergence_threshold", "-1"], r"DPS: divergence_threshold must be"),
    ([f"{REG}alpha", "-0.1"], r"EquiReg: alpha must be a finite number in \[0.0, inf\), got -0.1"),
    ([f"{REG}freq", "0"], r"EquiReg: freq must be a finite number in \(0.0, 1.0\], got 0.0"),
    ([f"{REG}freq", "1.5"], r"EquiReg: freq must be .*got 1.5"),
    ([f"{REG}cutoff_steps", "-5"], r"EquiReg: cutoff_steps must be >= 0"),
    ([f"{REG}group", "mirror"], r"unknown group 'mirror'"),
    ([f"{OP}noise_sigma", "-0.1"], r"DenseGaussian: noise_sigma must be a finite number in \[0.0, inf\)"),
    ([f"{OP}img_size", "[1, 8]"], r"model.operator.img_size: Expected a tuple with 3 elements"),
    ([f"{OP}img_size", "[1, 0, 8]"], r"DenseGaussian: img_size must be \[C, H, W\] with positive sizes"),
    ([f"{SOLVER}zetta", "0.3"], r"model.solver: Option .zetta. is not accepted"),
    (["--model.init_args.prior.init_args.std", "0"], r"GaussianPrior: std must be positive"),
    ([f"{DATA}predict_limit", "-3"], r"GaussianDataModule: predict_limit must be >= 0"),
    ([f"{DATA}predict_start", "-1"], r"GaussianDataModule: predict_start must be >= 0"),
    ([f"{DATA}batch_size", "0"], r"GaussianDataModule: batch_size must be >= 1, got 0"),
]


@pytest.mark.parametrize("overrides,message", CONFIG_CASES, ids=[" ".join(c[0]) for c in CONFIG_CASES])
def test_bad_setting_is_one_line_before_any_work(finished, capsys, overrides, message):
    before = snapshot(finished)
    line = refused(capsys, predict_args(finished, *overrides))
    assert pytest.importorskip("re").search(message, line), line
    assert snapshot(finished) == before


def test_predict_start_beyond_the_data(finished, capsys):
    before = snapshot(finished)
    line = refused(capsys, predict_args(finished, f"{DATA}predict_start", "600"))
    assert "predict_start 600 is beyond the 16 samples to predict from; valid: 0..15" in line
    assert snapshot(finished) == before


def test_rerun_with_other_settings_names_them(finished, capsys):
    before = snapshot(finished)
    line = refused(capsys, predict_args(finished, f"{SOLVER}zeta", "3.0"))
    assert "model.init_args.solver.init_args.zeta: 0.5 -> 3.0" in line and "--overwrite true" in line
    line = refused(capsys, predict_args(finished, f"{OP}num_measurements", "16"))
    assert "operator.init_args.num_measurements: 32 -> 16" in line
    assert snapshot(finished) == before


def test_folder_held_by_a_live_process_is_refused(finished, capsys):
    import socket

    before = snapshot(finished)
    lock = finished / "predictions" / ".lock"
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "started": "earlier"}))
    try:
        line = refused(capsys, predict_args(finished))
        assert f"is in use by process {os.getppid()}" in line
    finally:
        lock.unlink()
    assert snapshot(finished) == before


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    import socket
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    main(predict_args(tmp_path, f"{DATA}num_samples", "2", f"{SOLVER}num_steps", "3"))
    assert json.loads((tmp_path / "predictions" / "summary.json").read_text())["num_samples"] == 2
    assert not (tmp_path / "predictions" / ".lock").exists()


def test_corrupt_run_record_is_named(finished, tmp_path, capsys):
    root = tmp_path / "copy"
    shutil.copytree(finished, root)
    (root / "predictions" / "run.json").write_text("{not json")
    before = snapshot(root)
    assert "run.json is corrupt" in refused(capsys, predict_args(root))
    assert snapshot(root) == before


def test_unwritable_predictions_folder_is_found_before_sampling(tmp_path, capsys):
    (tmp_path / "predictions").write_text("a file where the folder should be")
    line = refused(capsys, predict_args(tmp_path))
    assert f"cannot write predictions to {tmp_path / 'predictions' / 'samples'}" in line


def test_corrupt_or_orphaned_sample_files_are_named_and_redone(finished, tmp_path, capsys):
    root = tmp_path / "copy"
    shutil.copytree(finished, root)
    samples = root / "predictions" / "samples"
    reference = {i: (samples / f"{i:05d}.safetensors").read_bytes() for i in (3, 9)}
    (samples / "00003.json").write_text("{truncated")
    (samples / "00009.safetensors").unlink()
    main(predict_args(root))
    err = capsys.readouterr().err
    assert "00003.json is corrupt" in err and "00009.json has no readable 00009.safetensors" in err
    for i, data in reference.items():  # redone, bit-identically (their batches recomputed whole)
        assert (samples / f"{i:05d}.safetensors").read_bytes() == data
    assert json.loads((root / "predictions" / "summary.json").read_text())["num_samples"] == 16


def test_overwrite_with_fewer_samples_summarizes_exactly_this_run(finished, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(finished, root)
    main(predict_args(root, "--overwrite", "true", f"{DATA}predict_limit", "4", f"{SOLVER}zeta", "1.0"))
    summary = json.loads((root / "predictions" / "summary.json").read_text())
    assert summary["num_samples"] == 4 and summary["complete"]
    assert sorted(p.name for p in (root / "predictions" / "samples").glob("*.json")) == [
        f"{i:05d}.json" for i in range(4)]


def weights_args(root: Path, weights: Path) -> list[str]:
    return ["predict", "--config", f"{REPO}/configs/predict/demo_mnist32.yaml", "--trainer.default_root_dir",
            str(root), "--model.init_args.prior.init_args.weights", str(weights)]


def test_missing_weights_file_is_named(tmp_path, capsys):
    line = refused(capsys, weights_args(tmp_path, tmp_path / "absent.safetensors"))
    assert f"DiffusersUNetPrior: weights not found: {tmp_path / 'absent.safetensors'}" in line


def test_random_bytes_weights_file_is_named(tmp_path, capsys):
    bad = tmp_path / "random.safetensors"
    bad.write_bytes(os.urandom(4096))
    line = refused(capsys, weights_args(tmp_path, bad))
    assert f"weights file {bad} is not a readable .safetensors file" in line


def test_truncated_weights_file_is_named(tmp_path, capsys):
    from equireg_lit.weights import SHIPPED_DIR

    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((SHIPPED_DIR / "mnist32.safetensors").read_bytes()[:50_000])
    line = refused(capsys, weights_args(tmp_path, cut))
    assert f"weights file {cut} is not a readable .safetensors file" in line


def test_mismatched_weights_are_named(tmp_path, capsys):
    wrong = tmp_path / "wrong.safetensors"
    save_file({"conv.weight": torch.zeros(3, 3)}, str(wrong))
    line = refused(capsys, weights_args(tmp_path, wrong))
    assert f"checkpoint {wrong} does not match UNet2DModel" in line


def measurement_args(root: Path, folder: Path) -> list[str]:
    return ["predict", "--config", DEMO, "--trainer.default_root_dir", str(root), *QUIET,
            "--model.init_args.mode", "measurement",
            "--data", "equireg_lit.datamodules.MeasurementDataModule", "--data.root", str(folder)]


def measurement_folder(tmp_path: Path, n: int = 3) -> Path:
    folder = tmp_path / "meas"
    folder.mkdir()
    for i in range(n):
        save_file({"y": torch.zeros(32)}, str(folder / f"{i:05d}.safetensors"))
    return folder


def test_measurement_folder_missing(tmp_path, capsys):
    assert f"measurement folder not found: {tmp_path / 'nope'}" in refused(capsys, measurement_args(tmp_path, tmp_path / "nope"))


BAD_MEASUREMENTS = {  # file 0000N.safetensors -> how it is broken, and the expected message
    "not safetensors": (1, lambda p: p.write_bytes(b"PNG\x00not a tensor file"), "is not a readable .safetensors file"),
    "no y": (2, lambda p: save_file({"x": torch.zeros(32)}, str(p)), "has no tensor 'y' (found ['x'])"),
    "nan": (0, lambda p: save_file({"y": torch.full((32,), float("nan"))}, str(p)), "holds 32 NaN/inf values"),
}


@pytest.mark.parametrize("case", BAD_MEASUREMENTS)
def test_bad_measurement_file_is_named(tmp_path, capsys, case):
    index, spoil, message = BAD_MEASUREMENTS[case]
    folder = measurement_folder(tmp_path)
    spoil(folder / f"{index:05d}.safetensors")
    line = refused(capsys, measurement_args(tmp_path, folder))
    assert f"measurement file {folder / f'{index:05d}.safetensors'} {message}" in line


def test_measurement_files_of_different_shapes(tmp_path, capsys):
    folder = measurement_folder(tmp_path)
    save_file({"y": torch.zeros(16)}, str(folder / "00002.safetensors"))
    line = refused(capsys, measurement_args(tmp_path, folder))
    assert "measurement files differ in shape" in line and "00002.safetensors has [16]" in line


def test_measurements_that_do_not_fit_the_operator(tmp_path, capsys):
    folder = tmp_path / "meas"
    folder.mkdir()
    save_file({"y": torch.zeros(20)}, str(folder / "00000.safetensors"))
    line = refused(capsys, measurement_args(tmp_path, folder))
    assert "measurements have shape (1, 20) but the operator produces (1, 32)" in line


def test_benchmark_mode_on_measurement_files(tmp_path, capsys):
    folder = measurement_folder(tmp_path)
    args = [a for a in measurement_args(tmp_path, folder) if a not in ("--model.init_args.mode", "measurement")]
    assert "mode is 'benchmark' but the data has no ground truth" in refused(capsys, args)


def test_missing_mask_file(tmp_path, capsys):
    args = predict_args(tmp_path, "--model.init_args.operator", json.dumps(
        {"class_path": "equireg_lit.physics.MaskInpainting",
         "init_args": {"mask_path": str(tmp_path / "mask.png"), "img_size": [1, 8, 8]}}))
    assert f"MaskInpainting: mask file not found: {tmp_path / 'mask.png'}" in refused(capsys, args)


def test_fit_without_training_refuses_to_export(tmp_path, capsys):
    line = refused(capsys, ["fit", "--config", FIT_TINY, "--trainer.default_root_dir", str(tmp_path),
                            "--trainer.max_epochs", "0", "--trainer.max_steps", "-1",
                            "--model.init_args.export_path", str(tmp_path / "w.safetensors")])
    assert "trains nothing but would export" in line and "allow_untrained" in line
    assert not (tmp_path / "w.safetensors").exists()


def test_fit_refuses_to_replace_shipped_weights(tmp_path, capsys):
    from equireg_lit.weights import SHIPPED_DIR

    shipped = SHIPPED_DIR / "mnist32.safetensors"
    before = shipped.stat().st_mtime_ns
    line = refused(capsys, ["fit", "--config", FIT_TINY, "--trainer.default_root_dir", str(tmp_path),
                            "--model.init_args.export_path", str(shipped)])
    assert f"model.init_args.export_path {shipped} would replace weights shipped with equireg-lit" in line
    assert "runs/<run>/mnist32.safetensors" in line
    assert shipped.stat().st_mtime_ns == before and not list(tmp_path.rglob("*.ckpt"))
    pair = SHIPPED_DIR / "mnist32_latent"  # a latent prior names the setting its user gave: export_dir
    line = refused(capsys, ["fit", "--model", "equireg_lit.models.LatentScoreModule", "--model.autoencoder",
                            str(pair / "vae"), "--model.export_dir", str(pair), "--model.prior",
                            "equireg_lit.diffusion.DiffusersUNetPrior", "--model.prior.random_init", "true",
                            "--model.prior.sample_size", "8", "--model.prior.in_channels", "4",
                            "--data", "equireg_lit.datamodules.GaussianDataModule",
                            "--trainer.default_root_dir", str(tmp_path / "latent")])
    assert f"model.init_args.export_dir {pair} would replace weights shipped" in line


def test_finite_blow_up_fails_its_sample_like_nan(tmp_path, capsys):
    line = refused(capsys, predict_args(tmp_path, f"{SOLVER}zeta", "1e8", f"{DATA}num_samples", "2",
                                        f"{SOLVER}num_steps", "5", "--model.init_args.regularizer", "null"), code=1)
    assert "2 sample(s) diverged (NaN, inf or beyond the solver's divergence_threshold)" in line
    assert "0 finished samples" in line
    summary = json.loads((tmp_path / "predictions" / "summary.json").read_text())
    assert summary["num_samples"] == 0 and set(summary["failed"]) == {"0", "1"} and not summary["complete"]
