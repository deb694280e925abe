"""Latent diffusion priors: a tiny diffusers pipeline saved with save_pretrained loads back, its
schedule equals diffusers', encode / decode are differentiable and scaled, and a bad directory is
one named error."""

import json

import pytest
import torch

from equireg_lit.diffusion import LatentDiffusionPrior, save_latent_pipeline
from equireg_lit.errors import ConfigError, DataError


def tiny_pipeline(tmp_path, kind: str = "vq"):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DModel, VQModel

    torch.manual_seed(0)
    common = dict(in_channels=1, out_channels=1, latent_channels=2, block_out_channels=(8, 16), layers_per_block=1,
                  norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    ae = VQModel(num_vq_embeddings=16, vq_embed_dim=2, scaling_factor=0.5, **common) if kind == "vq" else \
        AutoencoderKL(scaling_factor=0.5, **common)
    unet = UNet2DModel(sample_size=8, in_channels=2, out_channels=2, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.0015, beta_end=0.0195, num_train_timesteps=1000)
    return save_latent_pipeline(tmp_path / f"ldm_{kind}", ae, unet, sched), ae, unet, sched


@pytest.mark.parametrize("kind", ["vq", "kl"])
def test_a_saved_pipeline_loads_back_with_its_schedule_and_scaling(tmp_path, kind):
    path, ae, unet, sched = tiny_pipeline(tmp_path, kind)
    prior = LatentDiffusionPrior(str(path))
    assert (prior.channels, prior.image_size, prior.image_channels, prior.pixel_size) == (2, 8, 1, 16)
    assert torch.allclose(prior.schedule.alphas_cumprod.float(), sched.alphas_cumprod, atol=1e-6)
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    z = prior.encode(x)
    assert z.shape == (3, 2, 8, 8)
    with torch.no_grad():  # the scaling factor travels: latents are the autoencoder's times 0.5
        raw = ae.encode(x).latents if kind == "vq" else ae.encode(x).latent_dist.mode()
    assert torch.allclose(z, 0.5 * raw, atol=1e-5)
    t = torch.tensor([10, 500, 999])
    assert torch.allclose(prior(z, t), unet(z, t).sample, atol=1e-5)
    # decode is differentiable (straight-through through the VQ codebook)
    zr = z.detach().requires_grad_(True)
    prior.decode(zr).pow(2).sum().backward()
    assert zr.grad is not None and torch.isfinite(zr.grad).all() and zr.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"takes \[B, 1x16x16\] images"):
        prior.check_input((1, 3, 16, 16))


def test_bad_directories_are_one_named_error(tmp_path):
    with pytest.raises(DataError, match="latent diffusion directory not found"):
        LatentDiffusionPrior(str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="no shipped latent diffusion weights named 'nope'; shipped: "):
        LatentDiffusionPrior("nope")
    path, *_ = tiny_pipeline(tmp_path)
    (path / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(DataError, match="no scheduler_config.json"):
        LatentDiffusionPrior(str(path))
    path, *_ = tiny_pipeline(tmp_path / "b")
    cfg = path / "scheduler" / "scheduler_config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "prediction_type": "v_prediction"}))
    with pytest.raises(DataError, match="only epsilon networks"):
        LatentDiffusionPrior(str(path))
    (path / "vqvae").rename(path / "autoencoder")
    with pytest.raises(DataError, match=r"no autoencoder \(vqvae/ or vae/\)"):
        LatentDiffusionPrior(str(path))


def test_latent_dps_fits_the_measurement_through_the_decoder_and_takes_equireg_on_latents(tmp_path):
    from equireg_lit.physics import BoxInpainting
    from equireg_lit.regularizer import EquiReg, LatentDecoder
    from equireg_lit.solvers import Guidance, LatentDPS

    path, *_ = tiny_pipeline(tmp_path)
    prior = LatentDiffusionPrior(str(path)).requires_grad_(False)
    op = BoxInpainting(img_size=(1, 16, 16), box_size=8, noise_sigma=0.0)
    y = op.A(torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1)

    def run(zeta, reg=None):
        gens = [torch.Generator().manual_seed(i) for i in range(4)]
        g = Guidance(op, y, reg, [torch.Generator().manual_seed(9 + i) for i in range(4)])
        out = LatentDPS(num_steps=20, zeta=zeta).sample(prior, (4, 1, 16, 16), gens, g)
        assert out.x.shape == (4, 1, 16, 16) and not out.failed
        return out.x

    def misfit(x):
        return (op.A(x) - y).flatten(1).norm(dim=1).mean().item()

    plain = run(0.0)
    assert torch.equal(run(0.0), plain)  # reproducible from the generators
    assert misfit(run(0.3)) < 0.95 * misfit(plain)  # guidance through the decoder fits y (measured 8.9 vs 10.0)
    for f, form in ((LatentDecoder(), "equi"), (LatentDecoder(reencode=True), "equi_plus")):
        reg = EquiReg(f.bind(prior), "hflip", form=form, alpha=1.0)
        assert not torch.allclose(run(0.3, reg), run(0.3))
        assert reg.f_evaluations == 20 * (2 if form == "equi" else 1)


def test_latent_and_pixel_solvers_refuse_the_other_kind_of_prior(tmp_path):
    from equireg_lit.diffusion import GaussianPrior
    from equireg_lit.errors import ConfigError
    from equireg_lit.models import PosteriorSampler
    from equireg_lit.physics import BoxInpainting
    from equireg_lit.solvers import DPS, LatentDPS

    path, *_ = tiny_pipeline(tmp_path)
    op = BoxInpainting(img_size=(1, 16, 16), box_size=8)
    with pytest.raises(ConfigError, match="a latent prior needs a latent solver"):
        PosteriorSampler(LatentDiffusionPrior(str(path)), op, DPS())
    with pytest.raises(ConfigError, match="a latent prior needs a latent solver"):
        PosteriorSampler(GaussianPrior(), op, LatentDPS())


def test_psld_is_latent_dps_plus_the_gluing_term_and_needs_a_linear_operator(tmp_path):
    from equireg_lit.errors import ConfigError
    from equireg_lit.physics import BoxInpainting, HighDynamicRange
    from equireg_lit.solvers import PSLD, Guidance, LatentDPS

    path, *_ = tiny_pipeline(tmp_path)
    prior = LatentDiffusionPrior(str(path)).requires_grad_(False)
    op = BoxInpainting(img_size=(1, 16, 16), box_size=8, noise_sigma=0.0)
    y = op.A(torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1)

    def run(solver, physics=op, meas=y):
        gens = [torch.Generator().manual_seed(i) for i in range(2)]
        return solver.sample(prior, (2, 1, 16, 16), gens, Guidance(physics, meas)).x

    # Without the gluing term PSLD is latent DPS with zeta = omega.
    assert torch.allclose(run(PSLD(num_steps=10, omega=0.3, gamma=0.0)), run(LatentDPS(num_steps=10, zeta=0.3, eta=0.0)),
                          atol=1e-4)  # equal up to the order of floating-point sums
    glued = run(PSLD(num_steps=10, omega=0.3, gamma=0.3))
    assert glued.shape == (2, 1, 16, 16) and not torch.allclose(glued, run(PSLD(num_steps=10, omega=0.3, gamma=0.0)))
    hdr = HighDynamicRange(img_size=(1, 16, 16))
    with pytest.raises(ConfigError, match="gluing term needs a linear operator"):
        run(PSLD(num_steps=2), hdr, hdr.A(torch.zeros(2, 1, 16, 16)))


class IdentityLatentGaussian(LatentDiffusionPrior):
    """A latent prior with the identity as autoencoder and the exact Gaussian noise predictor:
    every latent sampler on it is a pixel sampler on ``GaussianPrior`` (closed forms apply)."""

    def __init__(self, mean: float = 0.0, std: float = 0.5, size: int = 8):
        from equireg_lit.diffusion import GaussianPrior

        torch.nn.Module.__init__(self)
        self.gaussian = GaussianPrior(mean, std, channels=1, image_size=size)
        self.channels, self.image_size, self.schedule = 1, size, self.gaussian.schedule
        self.image_channels, self.pixel_size, self.scaling_factor = 1, size, 1.0

    def forward(self, z_t, t):
        return self.gaussian(z_t, t)

    def encode(self, x):
        return x

    def decode(self, z):
        return z


def test_latent_dps_with_an_identity_autoencoder_is_pixel_dps():
    from equireg_lit.physics import BoxInpainting
    from equireg_lit.solvers import DPS, Guidance, LatentDPS

    prior = IdentityLatentGaussian()
    op = BoxInpainting(img_size=(1, 8, 8), box_size=4, noise_sigma=0.0)
    y = op.A(torch.full((3, 1, 8, 8), 0.3))
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(3)]  # noqa: E731
    latent = LatentDPS(num_steps=25, zeta=0.5, eta=1.0).sample(prior, (3, 1, 8, 8), gens(), Guidance(op, y)).x
    pixel = DPS(num_steps=25, zeta=0.5, eta=1.0, clip_x0=False).sample(prior.gaussian, (3, 1, 8, 8), gens(),
                                                                        Guidance(op, y)).x
    assert torch.allclose(latent, pixel, atol=1e-6)


def test_stochastic_resample_draws_the_product_of_the_two_gaussians():
    from equireg_lit.solvers.resample import stochastic_resample

    n, a, var = 4000, 0.64, 0.1
    z0, zt = torch.full((n, 1, 1, 1), 0.5), torch.full((n, 1, 1, 1), -1.0)
    draws = stochastic_resample(z0, zt, a, var, [torch.Generator().manual_seed(i) for i in range(n)])
    # N(sqrt(a) z0, 1 - a) * N(zt, var): precision-weighted mean, harmonic variance
    mean = (a**0.5 * 0.5 / (1 - a) + -1.0 / var) / (1 / var + 1 / (1 - a))
    assert abs(draws.mean().item() - mean) < 3 * (1 / (1 / var + 1 / (1 - a))) ** 0.5 / n**0.5
    assert draws.var().item() == pytest.approx(1 / (1 / var + 1 / (1 - a)), rel=0.08)


def test_consistency_fits_solve_least_squares_per_sample():
    from equireg_lit.solvers.resample import fit_per_sample

    target = torch.tensor([1.0, -2.0, 0.5]).view(3, 1)

    def objective(v):
        r = (v - target).pow(2).mean(1)
        return r, r

    start = torch.tensor([0.0, 0.0, 0.5]).view(3, 1)
    fit = fit_per_sample(start, objective, steps=3000, lr=1e-2, threshold=1e-6)
    assert torch.allclose(fit, target, atol=5e-3)  # AdamW (the authors' optimizer) decays toward 0
    assert fit[2].item() == 0.5  # already consistent: stopped before its first step, unchanged
    alone = fit_per_sample(start[:1], lambda v: ((v - target[:1]).pow(2).mean(1),) * 2, 3000, 1e-2, 1e-6)
    assert torch.equal(alone, fit[:1])  # a sample's fit ignores its batch
    assert torch.equal(fit_per_sample(start, objective, steps=0, lr=1e-2, threshold=0.0), start)


def test_resample_consistency_schedule_follows_the_authors_code():
    from equireg_lit.solvers import ReSample

    def stages(n):
        s = ReSample(num_steps=n)
        return {index: s.stage(index, n) for index in range(n) if s.stage(index, n)}

    # index counts down from n - 1; the last two thirds, every 10th index, index 0 excluded;
    # pixel space while index >= n // 3, latent space below
    assert stages(50) == {30: "pixel", 20: "pixel", 10: "latent"}
    assert stages(20) == {10: "pixel"}
    assert stages(100) == {60: "pixel", 50: "pixel", 40: "pixel", 30: "latent", 20: "latent", 10: "latent"}
    with pytest.raises(ConfigError, match="time_travel_steps must be >= 1"):
        ReSample(time_travel_steps=0)


def test_resample_meets_the_measurement_hard_and_keeps_the_prior_elsewhere():
    from equireg_lit.physics import BoxInpainting
    from equireg_lit.solvers import Guidance, ReSample

    prior = IdentityLatentGaussian(mean=0.0, std=0.5, size=8)
    op = BoxInpainting(img_size=(1, 8, 8), box_size=4, noise_sigma=0.0)
    n = 64
    y = op.A(torch.full((n, 1, 8, 8), 0.3))
    solver = ReSample(num_steps=50, consistency_steps=300, pixel_consistency_steps=300)
    out = solver.sample(prior, (n, 1, 8, 8), [torch.Generator().manual_seed(i) for i in range(n)], Guidance(op, y))
    assert not out.failed and solver.resamples == 3
    assert out.nfe == 50 + 3 * 5  # one network call per step and five per time travel
    misfit = (op.A(out.x) - y).flatten(1).pow(2).mean(1)
    assert misfit.max().item() < 2e-6  # hard consistency: the observed pixels fit y
    hidden = out.x[op.mask.expand_as(out.x) == 0]
    assert abs(hidden.std().item() - 0.5) < 0.1  # the box keeps the prior's spread


def test_resample_on_a_diffusers_pipeline_takes_equireg_in_its_consistency_objective(tmp_path):
    from equireg_lit.diffusion import GaussianPrior
    from equireg_lit.errors import ConfigError
    from equireg_lit.physics import BoxInpainting
    from equireg_lit.regularizer import EquiReg, LatentDecoder
    from equireg_lit.solvers import Guidance, ReSample

    path, *_ = tiny_pipeline(tmp_path)
    prior = LatentDiffusionPrior(str(path)).requires_grad_(False)
    op = BoxInpainting(img_size=(1, 16, 16), box_size=8, noise_sigma=0.05)
    y = op.A(torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1)

    def run(reg=None, **kw):
        g = Guidance(op, y, reg, [torch.Generator().manual_seed(9 + i) for i in range(2)])
        solver = ReSample(num_steps=20, consistency_steps=5, pixel_consistency_steps=20, **kw)
        out = solver.sample(prior, (2, 1, 16, 16), [torch.Generator().manual_seed(i) for i in range(2)], g)
        assert out.x.shape == (2, 1, 16, 16) and not out.failed
        return out.x

    base = run()
    assert torch.equal(run(), base)
    reg = EquiReg(LatentDecoder().bind(prior), "hflip", form="equi", alpha=1.0)
    assert not torch.allclose(run(reg), base)
    # 20 DPS steps + one latent fit of 5 steps at the end (the single resampling at 20 steps is in pixel space)
    assert reg.f_evaluations == 2 * (20 + 5)
    with pytest.raises(ConfigError, match="ReSample needs a LatentDiffusionPrior"):
        ReSample(num_steps=2).sample(GaussianPrior(), (1, 1, 16, 16), [torch.Generator()], Guidance(op, y[:1]))


def test_a_latent_pair_trains_with_fit_and_loads_as_a_latent_prior(tmp_path, repo_root):
    from equireg_lit.cli import main
    from equireg_lit.solvers import LatentDPS

    common = ["--trainer.max_steps", "3", "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false",
              "--trainer.enable_model_summary", "false", "--data", "equireg_lit.datamodules.GaussianDataModule",
              "--data.image_size", "16", "--data.num_samples", "16", "--data.batch_size", "8"]
    ldm = tmp_path / "ldm"
    main(["fit", "--model", "equireg_lit.models.AutoencoderModule", "--model.latent_channels", "2",
          "--model.block_out_channels", "[8, 16]", "--model.norm_num_groups", "4", "--model.warmup_steps", "1",
          "--model.augment_group", "hflip",
          "--model.export_dir", str(ldm), "--trainer.default_root_dir", str(tmp_path / "ae"), *common])
    ae_prov = json.loads((ldm / "vae_provenance.json").read_text())
    assert ae_prov["global_steps"] == 3 and ae_prov["scaling_factor"] == pytest.approx(1 / ae_prov["latent_std"])
    prior_args = ["--model.prior", "equireg_lit.diffusion.DiffusersUNetPrior", "--model.prior.random_init", "true",
                  "--model.prior.sample_size", "8", "--model.prior.in_channels", "2",
                  "--model.prior.block_out_channels", "[8, 16]", "--model.prior.norm_num_groups", "4",
                  "--model.prior.down_block_types", "[DownBlock2D, DownBlock2D]",
                  "--model.prior.up_block_types", "[UpBlock2D, UpBlock2D]"]
    with pytest.raises(SystemExit):  # a missing autoencoder is one named error before training
        main(["fit", "--model", "equireg_lit.models.LatentScoreModule", "--model.autoencoder", str(tmp_path / "none"),
              *prior_args, "--trainer.default_root_dir", str(tmp_path / "s0"), *common])
    main(["fit", "--model", "equireg_lit.models.LatentScoreModule", "--model.autoencoder", str(ldm / "vae"),
          "--model.export_dir", str(ldm), "--model.warmup_steps", "1", "--model.sample_every_n_epochs", "1",
          "--model.num_sample_images", "4", "--model.sample_steps", "2", *prior_args,
          "--trainer.default_root_dir", str(tmp_path / "s"), *common])
    prov = json.loads((ldm / "provenance.json").read_text())
    assert prov["global_steps"] == 3 and "LatentScoreModule" in prov["config_yaml"]
    prior = LatentDiffusionPrior(str(ldm))
    assert (prior.channels, prior.image_size, prior.pixel_size) == (2, 8, 16) and prior.provenance["global_steps"] == 3
    assert prior.scaling_factor == pytest.approx(ae_prov["scaling_factor"])
    out = LatentDPS(num_steps=2).sample(prior, (1, 1, 16, 16), [torch.Generator().manual_seed(0)])
    assert out.x.shape == (1, 1, 16, 16) and torch.isfinite(out.x).all()


def test_training_augmentation_flips_with_its_probability_and_names_a_bad_group():
    from equireg_lit.errors import ConfigError
    from equireg_lit.models import AutoencoderModule
    from equireg_lit.models.score import augment_batch
    from equireg_lit.regularizer.groups import get_group

    x = torch.randn(6, 1, 4, 4)
    flipped = augment_batch(x, get_group("hflip"), 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(flipped, x.flip(-1)) and torch.equal(augment_batch(x, get_group("hflip"), 0.0), x)
    assert augment_batch(x, None, 1.0) is x
    with pytest.raises(ConfigError, match="unknown augment_group 'mirror'; valid: .*hflip"):
        AutoencoderModule(augment_group="mirror")
