import pytest
import torch

from equireg_lit.diffusion import GaussianPrior, NoiseSchedule
from equireg_lit.solvers import DPS


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_schedule_round_trips(name):
    s = NoiseSchedule(name)
    # float64: at t = 999 abar is ~1e-5 (linear) or ~1e-9 (cosine), which float32 cannot invert.
    x0, eps = torch.randn(6, 1, 4, 4, dtype=torch.float64), torch.randn(6, 1, 4, 4, dtype=torch.float64)
    t = torch.tensor([0, 1, 10, 500, 900, 999])
    x_t = s.add_noise(x0, eps, t)
    assert torch.allclose(s.x0_to_eps(x_t, s.eps_to_x0(x_t, eps, t), t), eps, atol=1e-4)
    assert torch.allclose(s.eps_to_x0(x_t, eps, t), x0, atol=1e-3)
    assert torch.allclose(s.score_to_eps(s.eps_to_score(eps, t), t), eps, atol=1e-6)
    assert (s.alphas_cumprod[1:] < s.alphas_cumprod[:-1]).all()


def test_linear_schedule_matches_ddpm():
    s = NoiseSchedule("linear")
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    assert s.alphas_cumprod[-1].item() == pytest.approx(4.036e-5, rel=1e-2)


def test_timestep_subsequences():
    s = NoiseSchedule()
    assert s.timesteps(1000) == list(range(999, -1, -1))
    ts = s.timesteps(50)
    assert len(ts) == 50 and ts[0] == 999 and ts[-1] == 0 and ts == sorted(ts, reverse=True)
    with pytest.raises(ValueError):
        s.timesteps(1001)


def test_gaussian_prior_eps_is_posterior_mean_of_noise():
    prior = GaussianPrior(mean=0.3, std=0.5)
    t = torch.full((20000,), 300)
    x0 = 0.3 + 0.5 * torch.randn(20000, 1, 1, 1)
    eps = torch.randn_like(x0)
    x_t = prior.schedule.add_noise(x0, eps, t)
    # E[(eps - eps_hat(x_t)) * h(x_t)] = 0 for the exact conditional mean; check h = 1 and h = x_t.
    r = eps - prior(x_t, t)
    assert abs(r.mean().item()) < 0.02 and abs((r * x_t).mean().item()) < 0.02


def sample_stats(steps, eta, n=128):
    prior = GaussianPrior(mean=0.2, std=0.5, image_size=8)
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    x = DPS(num_steps=steps, eta=eta, clip_x0=False).sample(prior, (n, 1, 8, 8), gens).x
    return x.mean().item(), x.std().item()


@pytest.mark.parametrize("eta", [1.0, 0.0])
def test_full_step_sampling_reproduces_gaussian_prior(eta):
    """DDPM ancestral (eta = 1) and DDIM (eta = 0) on all 1000 steps reproduce N(0.2, 0.5^2)."""
    mean, std = sample_stats(1000, eta)
    # 8192 values: standard error of the mean ~0.0055, of the std ~0.004.
    assert mean == pytest.approx(0.2, abs=0.025)
    assert std == pytest.approx(0.5, rel=0.02)


def test_reduced_step_sampling_converges_as_steps_grow():
    """Coarse subsequences under-disperse (discretization error: 0.43 at 20 DDIM steps);
    the error shrinks monotonically with the number of steps."""
    errors = [abs(sample_stats(steps, 0.0)[1] - 0.5) for steps in (20, 50, 200)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.015


def test_deepinv_denoiser_is_the_exact_posterior_mean_for_a_gaussian_prior():
    """Wrapped for deepinv, the Gaussian prior's Tweedie estimate is E[x0 | x0 + sigma n] in closed form."""
    from equireg_lit.diffusion import DeepinvDenoiser, GaussianPrior

    prior = GaussianPrior(mean=0.2, std=0.5)
    den = DeepinvDenoiser(prior)
    for t in (10, 300, 900):
        a = prior.schedule.alphas_cumprod[t].double()
        sigma = ((1 - a) / a).sqrt()
        x = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
        expected = (0.25 * x + sigma**2 * 0.2) / (0.25 + sigma**2)
        torch.testing.assert_close(den(x, sigma), expected, rtol=1e-6, atol=1e-6)


def test_deepinv_dps_runs_on_the_wrapped_prior():
    """deepinv's own DPS sampler accepts the wrapped prior and our operators (the peer benchmark's setup)."""
    import deepinv

    from equireg_lit.diffusion import DeepinvDenoiser, GaussianPrior
    from equireg_lit.physics import BoxInpainting

    op = BoxInpainting(img_size=(1, 8, 8), box_size=4, noise_sigma=0.05)
    y = op.A(torch.zeros(2, 1, 8, 8))
    out = deepinv.sampling.DPS(DeepinvDenoiser(GaussianPrior()), num_steps=5)(y, op, seed=0)
    assert out.shape == (2, 1, 8, 8) and torch.isfinite(out).all()


def test_scheduler_step_with_every_timestep_and_eta_1_is_the_ddpm_posterior():
    from equireg_lit.diffusion.schedule import NoiseSchedule
    from equireg_lit.diffusion.scheduler import DDIMScheduler
    from equireg_lit.rng import per_sample_randn

    sched = NoiseSchedule("linear", 1000)
    s = DDIMScheduler(sched, 1000, eta=1.0, clip_sample=False)
    x_t = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for t in (999, 500, 1):
        gens = [torch.Generator().manual_seed(10 + i) for i in range(3)]
        out = s.step(eps, t, x_t, gens)
        a_t, a_prev, beta = sched.alphas_cumprod[t], sched.alphas_cumprod[t - 1], sched.betas[t]
        x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        mean = a_prev.sqrt() * beta / (1 - a_t) * x0 + (1 - beta).sqrt() * (1 - a_prev) / (1 - a_t) * x_t
        var = (1 - a_prev) / (1 - a_t) * beta  # beta_tilde
        z = per_sample_randn((3, 1, 4, 4), [torch.Generator().manual_seed(10 + i) for i in range(3)], x_t)
        assert torch.allclose(out.prev_sample, mean + var.sqrt() * z, atol=1e-10)
        assert torch.allclose(out.pred_original_sample, x0)


def test_deterministic_ddim_step_moves_along_the_exact_noise():
    from equireg_lit.diffusion.schedule import NoiseSchedule
    from equireg_lit.diffusion.scheduler import DDIMScheduler

    sched = NoiseSchedule("linear", 1000)
    s = DDIMScheduler(sched, 10, eta=0.0, clip_sample=False)
    x0 = torch.rand(2, 1, 4, 4, dtype=torch.float64) * 2 - 1
    eps = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    t, t_prev = s.timesteps[3], s.timesteps[4]
    a, a_prev = sched.alphas_cumprod[t], sched.alphas_cumprod[t_prev]
    out = s.step(eps, t, a.sqrt() * x0 + (1 - a).sqrt() * eps)  # no generators needed at eta = 0
    assert torch.allclose(out.prev_sample, a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps, atol=1e-12)
    with pytest.raises(ValueError, match="needs one generator per sample"):
        DDIMScheduler(sched, 10, eta=0.5).step(eps, t, x0)


@pytest.mark.parametrize("steps", [10, 50])
def test_coarse_ddim_on_a_gaussian_is_the_closed_form_linear_map_and_under_disperses(steps):
    """With the exact noise predictor of N(0, s^2), a deterministic DDIM step is the linear map
    x_prev = c x_t, c = (sqrt(a_prev a) s^2 + sqrt((1 - a_prev)(1 - a))) / (a s^2 + 1 - a), while the
    exact flow scales by sqrt(v_prev / v_t), v = a s^2 + 1 - a. By Cauchy-Schwarz c is the smaller:
    coarse DDIM under-disperses even with a perfect network (the PDE priors' spread is judged
    against this, not against 1)."""
    from equireg_lit.diffusion.scheduler import DDIMScheduler

    s = 0.5
    prior = GaussianPrior(0.0, s, 1, 4)
    gens = [torch.Generator().manual_seed(i) for i in range(8)]
    x_T = torch.stack([torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(i)) for i in range(8)])
    out = DPS(num_steps=steps, eta=0.0, clip_x0=False).sample(prior, (8, 1, 4, 4), gens).x
    sched = DDIMScheduler(prior.schedule, steps, eta=0.0, clip_sample=False)
    factor = 1.0
    for t in sched.timesteps:
        a, a_prev = sched.alpha_prod(t), sched.alpha_prod_prev(t)
        factor *= ((a_prev * a) ** 0.5 * s**2 + ((1 - a_prev) * (1 - a)) ** 0.5) / (a * s**2 + 1 - a)
    assert torch.allclose(out, factor * x_T, rtol=1e-4, atol=1e-6)
    exact = s / (sched.alpha_prod(sched.timesteps[0]) * s**2 + 1 - sched.alpha_prod(sched.timesteps[0])) ** 0.5
    assert factor < exact and factor / exact == pytest.approx({10: 0.719, 50: 0.938}[steps], abs=0.01)
