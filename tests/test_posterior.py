import pytest
from pathlib import Path
import torch

from torch import nn

import lightning.pytorch as pl
from equireg_lit.callbacks import PredictionWriter
from equireg_lit.datamodules import GaussianDataModule
from equireg_lit.diffusion import GaussianPrior
from equireg_lit.models import PosteriorSampler
from equireg_lit.physics import DenseGaussian
from equireg_lit.regularizer import EquiReg, FixedConv, PriorDenoiser
from equireg_lit.solvers import DPS, Guidance, SamplingError


def closed_form_posterior_mean(prior, op, y):
    M = op.matrix.double()
    n = M.shape[1]
    prec = torch.eye(n, dtype=torch.float64) / prior.std**2 + M.T @ M / op.noise_sigma**2
    rhs = prior.mean / prior.std**2 + (y.double() @ M) / op.noise_sigma**2
    return torch.linalg.solve(prec, rhs.T).T.float()


def run_dps(zeta, regularizer=None, n=64, steps=100, seed=0):
    prior = GaussianPrior(mean=0.0, std=0.5, image_size=8)
    op = DenseGaussian(img_size=(1, 8, 8), num_measurements=48, noise_sigma=0.05)
    truth = 0.5 * torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    y = op.A(truth) + 0.05 * torch.randn(n, 48, generator=torch.Generator().manual_seed(seed + 1))
    gens = [torch.Generator().manual_seed(1000 + i) for i in range(n)]
    out = DPS(num_steps=steps, zeta=zeta, clip_x0=False).sample(prior, (n, 1, 8, 8), gens, Guidance(op, y, regularizer))
    return out.x, truth, closed_form_posterior_mean(prior, op, y).view(n, 1, 8, 8)


def test_guidance_moves_samples_toward_the_closed_form_posterior():
    x_free, truth, post_mean = run_dps(zeta=0.0)
    x_dps, _, _ = run_dps(zeta=1.0)
    err = lambda a, b: (a - b).pow(2).mean().item()  # noqa: E731
    assert err(x_dps, truth) < 0.5 * err(x_free, truth)
    # DPS is approximate, but its samples sit far closer to the exact posterior mean than prior draws do.
    assert err(x_dps, post_mean) < 0.3 * err(x_free, post_mean)
    # The exact posterior's own spread: E||x - post_mean||^2 = tr(Sigma_post) / n is a floor.
    assert err(post_mean, truth) < err(x_dps, truth)


def test_equivariant_f_gives_bit_identical_samples():
    plain, _, _ = run_dps(zeta=1.0, n=8)
    reg = EquiReg(nn.Identity(), "d4", alpha=1.0, seed=0)
    regularized, _, _ = run_dps(zeta=1.0, regularizer=reg, n=8)
    assert torch.equal(plain, regularized)
    changed, _, _ = run_dps(zeta=1.0, regularizer=EquiReg(FixedConv(1), "hflip", alpha=1.0, seed=0), n=8)
    assert not torch.equal(plain, changed)


def make_sampler(regularizer=None, prior=None, seed=0, steps=20):
    return PosteriorSampler(
        prior=prior or GaussianPrior(mean=0.0, std=0.5, image_size=8),
        operator=DenseGaussian(img_size=(1, 8, 8), num_measurements=32, noise_sigma=0.05),
        solver=DPS(num_steps=steps, zeta=0.5, clip_x0=False),
        regularizer=regularizer,
        seed=seed,
    )


def predict(tmp_path, model, batch_size=4, num_samples=8, overwrite=False, name="out"):
    """The CLI's wiring by hand: the datamodule gets the model's operator and seed and the run's folder."""
    writer = PredictionWriter(overwrite=overwrite)
    trainer = pl.Trainer(
        inference_mode=False, logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[writer], default_root_dir=str(tmp_path / name),
    )
    dm = GaussianDataModule(num_samples=num_samples, batch_size=batch_size, seed=3, operator=model.operator,
                            measurement_seed=model.seed, predictions_dir=str(tmp_path / name / "predictions"))
    trainer.predict(model, datamodule=dm, return_predictions=False)
    return tmp_path / name / "predictions"


def load(out, i):
    from safetensors.torch import load_file

    return load_file(str(out / "samples" / f"{i:05d}.safetensors"))["reconstruction"]


def test_batch_size_and_seed_invariance(tmp_path):
    reg = lambda: EquiReg(PriorDenoiser(t0=20), "d4", form="equi_plus", alpha=0.5, seed=0)  # noqa: E731
    a = predict(tmp_path, make_sampler(reg()), batch_size=1, num_samples=4, name="b1")
    b = predict(tmp_path, make_sampler(reg()), batch_size=4, num_samples=4, name="b4")
    c = predict(tmp_path, make_sampler(reg()), batch_size=4, num_samples=4, name="b4again")
    d = predict(tmp_path, make_sampler(reg(), seed=1), batch_size=4, num_samples=4, name="seed1")
    for i in range(4):
        assert torch.allclose(load(a, i), load(b, i), atol=1e-5)
        assert torch.equal(load(b, i), load(c, i))
        assert not torch.allclose(load(b, i), load(d, i))


def test_outputs_and_resume(tmp_path):
    out = predict(tmp_path, make_sampler(), num_samples=8)
    files = sorted(p.name for p in (out / "samples").iterdir())
    assert "00007.json" in files and "00007.safetensors" in files and "00007_truth.png" in files
    lines = (out / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[0] == "index" and {"psnr", "data_residual"} <= set(header) and len(lines) == 9
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_samples"] == 8 and summary["steps"] == 20 and summary["psnr"]["n"] == 8
    # Simulate an interrupted run: two samples missing. The rerun redoes only those.
    for i in (2, 5):
        (out / "samples" / f"{i:05d}.json").unlink()
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "samples").glob("*.safetensors")}
    before = {i: load(out, i) for i in range(8)}
    predict(tmp_path, make_sampler(), num_samples=8)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "samples").glob("*.safetensors")}
    rewritten = sorted(k for k in after if after[k] != mtimes.get(k))
    assert rewritten == ["00002.safetensors", "00005.safetensors"]
    # Their batches were recomputed whole, so the redone samples are bit-identical.
    assert all(torch.equal(load(out, i), before[i]) for i in range(8))
    assert len((out / "metrics.csv").read_text().splitlines()) == 9
    predict(tmp_path, make_sampler(), num_samples=8, overwrite=True)
    again = {p.name: p.stat().st_mtime_ns for p in (out / "samples").glob("*.safetensors")}
    assert all(again[k] != after[k] for k in after)


class NaNPrior(GaussianPrior):
    """Returns NaN for the sample at batch position 1 from the 5th call of the first batch on."""

    def __init__(self):
        super().__init__(mean=0.0, std=0.5, image_size=8)
        self.calls = 0

    def forward(self, x_t, t):
        eps = super().forward(x_t, t)
        self.calls += 1
        if 5 <= self.calls <= 20:  # first batch only (20 steps)
            eps = eps.clone()
            eps[1] = float("nan")
        return eps


def test_nan_names_sample_and_step_and_keeps_other_outputs(tmp_path):
    with pytest.raises(SamplingError, match=r"1 sample\(s\) diverged .*sample 1 at step 4. 7 finished samples"):
        predict(tmp_path, make_sampler(prior=NaNPrior()), batch_size=4, num_samples=8)
    out = tmp_path / "out" / "predictions"
    done = sorted(int(p.stem) for p in (out / "samples").glob("*.json"))
    assert done == [0, 2, 3, 4, 5, 6, 7]
    assert (out / "failures.json").is_file()


def test_shape_and_group_errors_before_sampling():
    s = make_sampler()
    with pytest.raises(ValueError, match="8x8"):
        s.check_shapes(torch.Size((2, 1, 16, 16)), "data")
    with pytest.raises(ValueError, match="1-channel"):
        s.check_shapes(torch.Size((2, 3, 8, 8)), "data")
    rect = PosteriorSampler(
        prior=GaussianPrior(image_size=None),
        operator=DenseGaussian(img_size=(1, 8, 12)),
        solver=DPS(num_steps=5),
        regularizer=EquiReg(nn.Identity(), "rot90"),
    )
    with pytest.raises(ValueError, match="quarter turns"):
        rect.check_shapes(torch.Size((2, 1, 8, 12)), "data")
    with pytest.raises(ValueError, match="img_size"):
        make_sampler().operator.check_input((2, 1, 8, 9))


def test_measurement_mode_reads_y_and_mask_from_files(tmp_path):
    from safetensors.torch import save_file

    from equireg_lit.datamodules import MeasurementDataModule
    from equireg_lit.physics import BoxInpainting, MaskInpainting

    box = BoxInpainting(img_size=(1, 8, 8), box_size=4)
    save_file({"mask": box.mask[0, 0].contiguous()}, str(tmp_path / "mask.safetensors"))
    meas = tmp_path / "meas"
    meas.mkdir()
    truth = 0.5 * torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for i in range(3):
        save_file({"y": box.A(truth[i : i + 1])[0].contiguous()}, str(meas / f"{10 + i:05d}.safetensors"))
    op = MaskInpainting(mask_path=str(tmp_path / "mask.safetensors"), img_size=(1, 8, 8))
    assert torch.equal(op.mask, box.mask)
    model = PosteriorSampler(prior=GaussianPrior(image_size=8), operator=op, solver=DPS(num_steps=20, clip_x0=False),
                             mode="measurement")
    writer = PredictionWriter()
    trainer = pl.Trainer(inference_mode=False, logger=False, enable_progress_bar=False, callbacks=[writer],
                         default_root_dir=str(tmp_path / "out"))
    trainer.predict(model, datamodule=MeasurementDataModule(str(meas), batch_size=2), return_predictions=False)
    names = sorted(p.name for p in (tmp_path / "out" / "predictions" / "samples").glob("*"))
    assert "00012_recon.png" in names and not any("truth" in n for n in names)
    # A measurement that does not match the operator is refused before sampling.
    bad = PosteriorSampler(prior=GaussianPrior(image_size=8), operator=DenseGaussian(img_size=(1, 8, 8)),
                           solver=DPS(num_steps=5), mode="measurement")
    with pytest.raises(ValueError, match=r"measurements have shape \(2, 1, 8, 8\) but the operator produces \(2, 16\)"):
        bad.predict_step({"y": torch.zeros(2, 1, 8, 8), "index": torch.tensor([0, 1])}, 0)
    # A measurement-mode model refuses ground-truth data, and vice versa, naming the mode.
    with pytest.raises(ValueError, match="mode is 'benchmark' but the data has no ground truth"):
        make_sampler().predict_step({"y": torch.zeros(2, 32), "index": torch.tensor([0, 1])}, 0)


def test_zeta_zero_reproduces_the_prior():
    prior = GaussianPrior(mean=0.1, std=0.5, image_size=8)
    op = DenseGaussian(img_size=(1, 8, 8), num_measurements=32)
    n = 128
    y = op.A(torch.ones(n, 1, 8, 8))  # informative measurements, ignored when zeta = 0
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    x = DPS(num_steps=1000, zeta=0.0, clip_x0=False).sample(prior, (n, 1, 8, 8), gens, Guidance(op, y)).x
    assert x.mean().item() == pytest.approx(0.1, abs=0.025)
    assert x.std().item() == pytest.approx(0.5, rel=0.03)


def test_prior_denoiser_uses_bound_or_own_prior():
    own = GaussianPrior(mean=0.5, std=0.1)
    f_own = PriorDenoiser(t0=50, prior=own).bind(GaussianPrior(mean=-0.5, std=0.1))
    f_bound = PriorDenoiser(t0=50).bind(GaussianPrior(mean=-0.5, std=0.1))
    x = torch.zeros(1, 1, 4, 4)
    assert f_own(x).mean() > 0 > f_bound(x).mean()
    with pytest.raises(RuntimeError, match="not bound"):
        PriorDenoiser()(x)


def test_lpips_uses_torchmetrics_with_the_backbone_from_the_hub_cache_or_skips_in_one_line(tmp_path, monkeypatch, caplog):
    import torchvision

    from equireg_lit.metrics.lpips import alexnet_cache_path, load_lpips

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with caplog.at_level("WARNING"):
            assert load_lpips() is None  # nothing downloads: one line says where the file goes
        assert "LPIPS skipped" in caplog.text and str(alexnet_cache_path()) in caplog.text
        alexnet_cache_path().parent.mkdir(parents=True)
        torch.manual_seed(0)
        torch.save(torchvision.models.alexnet(weights=None).state_dict(), alexnet_cache_path())
        lp = load_lpips()
        a, b = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
        assert torch.allclose(lp(a, a), torch.zeros(2), atol=1e-6) and (lp(a, b) > 0).all()
    finally:
        torch.hub.set_dir(str(Path.home() / ".cache" / "torch" / "hub"))


def test_nfe_counts_the_prior_and_every_evaluation_of_f(tmp_path):
    import json

    plain = predict(tmp_path, make_sampler(), num_samples=2, name="plain")
    denoiser = predict(tmp_path, make_sampler(EquiReg(PriorDenoiser(t0=20), "hflip", form="equi_plus")),
                       num_samples=2, name="denoiser")
    probe = predict(tmp_path, make_sampler(EquiReg(FixedConv(1), "hflip", form="equi")), num_samples=2, name="probe")
    nfe = {p.parent.name: json.loads((p / "summary.json").read_text())["network_evaluations_per_sample"]
           for p in (plain, denoiser, probe)}
    assert nfe == {"plain": 20, "denoiser": 40, "probe": 60}  # equi evaluates f at x and at g.x
