"""Shipped MNIST predict configs run end to end with the shipped prior (2 steps, 2 digits): one per
operator, alternating plain DPS and DPS + EquiReg (every config is parsed by test_cli)."""

import json
import os

import pytest

from equireg_lit.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ["box_inpainting", "random_inpainting", "sr4", "gaussian_blur", "motion_blur", "phase_retrieval", "hdr"]
CONFIGS = [os.path.join(ROOT, "configs", "predict", f"mnist32_{t}_dps{'_equireg' if i % 2 == 0 else ''}.yaml")
           for i, t in enumerate(TASKS)] + [os.path.join(ROOT, "configs", "predict", "demo_mnist32.yaml")] + [
    os.path.join(ROOT, "configs", "predict", f"mnist32_{t}_diffpir{'_equireg' if i % 2 else ''}.yaml")
    for i, t in enumerate(["box_inpainting", "sr4", "gaussian_blur", "phase_retrieval"])]


@pytest.mark.parametrize("config", CONFIGS, ids=os.path.basename)
def test_mnist_config_runs(config, tmp_path):
    main(["predict", "--config", config, "--trainer.default_root_dir", str(tmp_path),
          "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
          "--model.init_args.solver.init_args.num_steps", "2",
          "--data.init_args.predict_limit", "2", "--data.init_args.batch_size", "2"])
    summary = json.loads((tmp_path / "predictions" / "summary.json").read_text())
    assert summary["num_samples"] == 2 and summary["failed"] == {}
    assert summary["psnr"]["n"] == 2 and summary["ssim"]["n"] == 2
    assert len(list((tmp_path / "predictions" / "samples").glob("*_recon.png"))) == 2


def test_shipped_weights_have_provenance():
    from equireg_lit.diffusion import DiffusersUNetPrior
    from equireg_lit.metrics.digits import load_digit_classifier

    prior = DiffusersUNetPrior(weights="mnist32")
    assert prior.provenance["epochs"] > 0 and prior.provenance["final_val_loss_ema"] is not None
    assert prior.channels == 1 and prior.image_size == 32
    load_digit_classifier()


def test_the_shipped_latent_pair_has_provenance_and_reconstructs_test_digits():
    import torch

    from equireg_lit.data.mnist import mnist32, split_indices
    from equireg_lit.diffusion import LatentDiffusionPrior
    from equireg_lit.metrics import batch_psnr

    prior = LatentDiffusionPrior("mnist32_latent")
    assert prior.provenance["epochs"] == 120 and prior.provenance["final_val_loss_ema"] is not None
    assert (prior.channels, prior.image_size, prior.pixel_size) == (4, 8, 32)
    x = mnist32()[0][split_indices("test")[:16]]
    with torch.no_grad():
        z = prior.encode(x)
        assert batch_psnr(prior.decode(z), x).mean() > 30  # measured 32.8 dB on 500 test digits
        d = prior.decode(z)
        flip_error = ((prior.decode(z.flip(-1)) - d.flip(-1)).flatten(1).norm(dim=1) / d.flatten(1).norm(dim=1)).median()
    # flips of the latent map are not flips of the image for this autoencoder (trained on upright
    # digits, no flips): median relative error 0.58 on 500 test digits
    assert 0.3 < flip_error < 0.9


SOLVER = "--model.init_args.solver.init_args."
OTHER_SAMPLERS = {  # config -> the overrides that make it a 2-step run
    "mnist32_sr4_sitcom.yaml": [SOLVER + "num_steps", "2", SOLVER + "consistency_steps", "2"],
    "mnist32_hdr_daps.yaml": [SOLVER + "annealing_steps", "2", SOLVER + "ode_steps", "1", SOLVER + "langevin_steps", "2"],
    "mnist32_box_inpainting_psld_equicon.yaml": [SOLVER + "num_steps", "2"],
    "mnist32_random_inpainting_resample_equireg.yaml": [SOLVER + "num_steps", "4"],
    "mnist32_gaussian_blur_latent_dps.yaml": [SOLVER + "num_steps", "2"],
    "mnist32_phase_retrieval_resample_equireg.yaml": [SOLVER + "num_steps", "4"],  # a nonlinear operator
}


@pytest.mark.parametrize("config", sorted(OTHER_SAMPLERS), ids=str)
def test_other_sampler_configs_run(config, tmp_path):
    """SITCOM, DAPS and the latent samplers' shipped configs, a few steps on 2 digits."""
    main(["predict", "--config", os.path.join(ROOT, "configs", "predict", config), "--trainer.default_root_dir",
          str(tmp_path), "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
          "--data.init_args.predict_limit", "2", "--data.init_args.batch_size", "2", *OTHER_SAMPLERS[config]])
    summary = json.loads((tmp_path / "predictions" / "summary.json").read_text())
    assert summary["num_samples"] == 2 and summary["failed"] == {} and summary["psnr"]["n"] == 2


@pytest.mark.parametrize("solver,steps", [
    ("SITCOM", ["num_steps", "2", "consistency_steps", "2", "equi_phase_steps", "2"]),
    ("DAPS", ["annealing_steps", "2", "ode_steps", "1", "langevin_steps", "2"]),
    ("DiffPIR", ["num_steps", "2"]),
], ids=lambda v: v if isinstance(v, str) else "")
def test_any_shipped_equireg_config_runs_with_another_sampler(solver, steps, tmp_path):
    """``--model.init_args.solver equireg_lit.solvers.<Name>`` on a shipped DPS + EquiReg config:
    the operator, prior and regularizer stay, the sampler changes."""
    flags = [x for k, v in zip(steps[::2], steps[1::2], strict=True) for x in (SOLVER + k, v)]
    main(["predict", "--config", os.path.join(ROOT, "configs", "predict", "mnist32_sr4_dps_equireg.yaml"),
          "--model.init_args.solver", f"equireg_lit.solvers.{solver}", *flags,
          "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
          "--trainer.logger", "false", "--data.init_args.predict_limit", "2", "--data.init_args.batch_size", "2"])
    summary = json.loads((tmp_path / "predictions" / "summary.json").read_text())
    assert summary["num_samples"] == 2 and summary["failed"] == {}
    config = (tmp_path / "config.yaml").read_text()
    assert f"class_path: equireg_lit.solvers.{solver}" in config and "equireg_lit.regularizer.EquiReg" in config
