"""The 256x256 FFHQ / ImageNet configs run end to end on a photo with a stand-in checkpoint of the
real architecture (random weights saved to a file, loaded by path like ``ffhq_10m.pt``): one step,
one image. The fast suite runs two of them at 64x64; ``-m slow`` runs all 14 FFHQ ones at 256."""

import json
import os

import pytest
import torch

from equireg_lit.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ["box_inpainting", "random_inpainting", "sr4", "gaussian_blur", "motion_blur", "phase_retrieval", "hdr"]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    return folder


@pytest.fixture(scope="module")
def stand_in_checkpoint(tmp_path_factory):
    """A state dict of the ffhq_10m.pt architecture (deepinv DiffUNet, large_model False)."""
    from deepinv.models import DiffUNet

    path = tmp_path_factory.mktemp("weights") / "ffhq_10m.pt"
    torch.manual_seed(0)
    torch.save(DiffUNet(in_channels=3, out_channels=6, large_model=False, pretrained=None).state_dict(), path)
    return path


def run_entry(entry: str, root, photos, weights, size: int = 256, extra: list[str] | None = None) -> dict:
    args = ["predict", "--config", os.path.join(ROOT, "configs", "predict", entry),
            "--model.init_args.prior.init_args.weights", str(weights),
            "--data.init_args.root", str(photos), "--data.init_args.predict_limit", "1",
            "--model.init_args.solver.init_args.num_steps", "1",
            "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false"]
    if size != 256:
        args += ["--model.init_args.prior.init_args.image_size", str(size), "--data.init_args.image_size", str(size),
                 "--model.init_args.operator.init_args.img_size", f"[3, {size}, {size}]"]
    main(args + (extra or []))
    summary = json.loads((root / "predictions" / "summary.json").read_text())
    assert summary["num_samples"] == 1 and summary["failed"] == {}
    assert len(list((root / "predictions" / "samples").glob("*_recon.png"))) == 1
    return summary


@pytest.mark.parametrize("entry, extra", [("ffhq256_sr4_dps.yaml", []),
                                          ("ffhq256_box_inpainting_dps_equireg.yaml",
                                           ["--model.init_args.operator.init_args.box_size", "32"])])
def test_ffhq_configs_run_at_small_size_with_a_stand_in_checkpoint(entry, extra, tmp_path, photo_folder,
                                                                   stand_in_checkpoint):
    summary = run_entry(entry, tmp_path, photo_folder, stand_in_checkpoint, size=64, extra=extra)
    assert summary["psnr"]["n"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("entry", [f"ffhq256_{t}_dps{s}.yaml" for t in TASKS for s in ("", "_equireg")])
def test_every_ffhq_config_runs_at_256_with_a_stand_in_checkpoint(entry, tmp_path, photo_folder, stand_in_checkpoint):
    run_entry(entry, tmp_path, photo_folder, stand_in_checkpoint)


def test_missing_checkpoint_names_the_file_and_where_to_get_it(tmp_path, photo_folder, capsys):
    with pytest.raises(SystemExit):
        run_entry("ffhq256_sr4_dps.yaml", tmp_path, photo_folder, tmp_path / "nowhere" / "ffhq_10m.pt", size=64)
    err = capsys.readouterr().err
    assert "ffhq_10m.pt" in err and "docs/priors.md" in err


def run_measured(family: str, root, weights) -> dict:
    main(["predict", "--config", os.path.join(ROOT, "configs", "predict", f"ffhq256_measured_{family}.yaml"),
          "--model.init_args.prior.init_args.weights", str(weights),
          "--model.init_args.solver.init_args.num_steps", "1", "--trainer.default_root_dir", str(root),
          "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"])
    return json.loads((root / "predictions" / "summary.json").read_text())


def test_own_photo_with_a_hole_restores_in_measurement_mode(tmp_path, stand_in_checkpoint, monkeypatch):
    """The three-step recipe on the example photo: PNG in, side-by-side PNG and the data
    residual out (no ground truth, so no PSNR)."""
    from equireg_lit.utils.figures import GAP, png_array

    monkeypatch.chdir(ROOT)  # the example configs name repository-relative files
    summary = run_measured("inpainting", tmp_path, stand_in_checkpoint)
    assert summary["num_samples"] == 1 and "psnr" not in summary
    assert 0 < summary["data_residual"]["mean"] < 10
    strip = png_array(tmp_path / "predictions" / "samples" / "00000_compare.png")
    assert strip.shape[1] == 2 * 256 + GAP  # measurement | reconstruction


@pytest.mark.slow
@pytest.mark.parametrize("family", ["deblur", "sr4"])
def test_own_blurred_or_small_photo_restores_in_measurement_mode(family, tmp_path, stand_in_checkpoint, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert run_measured(family, tmp_path, stand_in_checkpoint)["num_samples"] == 1
