"""Samplers against the closed-form Gaussian posterior (Gaussian prior with its exact score, a
dense Gaussian operator, Gaussian noise): sample mean and covariance of many draws for one y."""

from __future__ import annotations

import pytest
import torch

from equireg_lit.diffusion import GaussianPrior
from equireg_lit.physics import DenseGaussian, HighDynamicRange
from equireg_lit.regularizer import EquiReg, FixedConv, PriorDenoiser
from equireg_lit.solvers import DiffPIR, Guidance

N = 400


@pytest.fixture(scope="module")
def problem():
    prior = GaussianPrior(mean=0.0, std=0.5, image_size=8)
    op = DenseGaussian(img_size=(1, 8, 8), num_measurements=32, noise_sigma=0.05)
    truth = 0.5 * torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = op.A(truth) + 0.05 * torch.randn(1, 32, generator=torch.Generator().manual_seed(1))
    m = op.matrix.double()
    cov = torch.linalg.inv(torch.eye(64, dtype=torch.float64) / 0.5**2 + m.T @ m / 0.05**2)
    mean = cov @ (m.T @ y.double()[0]) / 0.05**2
    return prior, op, y.expand(N, 32), mean, cov


def moments(solver, problem, regularizer=None, n: int = N):
    prior, op, y, mean, cov = problem
    gens = [torch.Generator().manual_seed(100 + i) for i in range(n)]
    reg_gens = [torch.Generator().manual_seed(900 + i) for i in range(n)]
    x = solver.sample(prior, (n, 1, 8, 8), gens, Guidance(op, y[:n], regularizer, reg_gens)).x.reshape(n, -1).double()
    scale = cov.diagonal().sum().sqrt()  # sqrt(trace of the posterior covariance)
    return ((x.mean(0) - mean).norm() / scale).item(), (torch.cov(x.T).trace() / cov.trace()).item()


def test_diffpir_matches_the_closed_form_posterior(problem):
    # Measured (N = 400, 50 steps): mean error 0.08 of the posterior's spread (sampling noise alone
    # 1 / sqrt(N) = 0.05), covariance trace 0.87 of the exact one.
    mean_err, trace_ratio = moments(DiffPIR(num_steps=50, clip_x0=False), problem)
    assert mean_err < 0.2 and 0.7 < trace_ratio < 1.2
    # Without the data step the draws are prior samples, far from the posterior.
    prior_err, _ = moments(DiffPIR(num_steps=50, clip_x0=False, lambda_=1e12), problem)  # rho huge: z = x0_hat
    assert prior_err > 5 * mean_err


def test_diffpir_equireg_enters_the_data_step(problem):
    solver = DiffPIR(num_steps=10, clip_x0=False)
    plain = moments(solver, problem, n=64)
    exact = moments(solver, problem, EquiReg(torch.nn.Identity(), "hflip", alpha=1.0), n=64)
    assert exact == pytest.approx(plain, abs=0.02)  # an exactly equivariant f changes (almost) nothing
    changed = moments(solver, problem, EquiReg(FixedConv(1), "hflip", alpha=1.0), n=64)
    assert changed != pytest.approx(plain, abs=1e-3)
    # Each proximal-gradient step evaluates f once (form equi_plus), only where the penalty is active.
    prior, op, y, _, _ = problem
    for penalty_steps, freq in ((1, 1.0), (3, 1.0), (2, 0.5)):
        reg = EquiReg(FixedConv(1), "hflip", form="equi_plus", alpha=1.0, freq=freq)
        gens = [torch.Generator().manual_seed(i) for i in range(4)]
        DiffPIR(num_steps=10, penalty_steps=penalty_steps).sample(prior, (4, 1, 8, 8), gens, Guidance(op, y[:4], reg, gens))
        assert reg.f_evaluations == penalty_steps * round(10 * freq)


def test_diffpir_with_a_nonlinear_operator_and_the_denoiser_as_f():
    prior = GaussianPrior(mean=0.0, std=0.5, image_size=8)
    op = HighDynamicRange(img_size=(1, 8, 8))
    truth = 0.5 * torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = op.A(truth)
    reg = EquiReg(PriorDenoiser(t0=20).bind(prior), "hflip", form="equi_plus", alpha=0.01)

    def misfit(**settings) -> float:
        gens = [torch.Generator().manual_seed(i) for i in range(4)]
        out = DiffPIR(num_steps=20, **settings).sample(prior, (4, 1, 8, 8), gens, Guidance(op, y, reg, gens))
        assert not out.failed and torch.isfinite(out.x).all()
        return (op.A(out.x) - y).pow(2).mean().item()

    # Adam steps on the data sub-problem fit the saturated measurement (measured 0.05 vs 0.93).
    assert misfit(data_steps=30) < 0.2 * misfit(data_steps=30, lambda_=1e12)


def test_sitcom_fits_the_measurement_to_the_noise_level_and_moves_toward_the_posterior(problem):
    from equireg_lit.solvers import SITCOM

    prior, op, y, mean, cov = problem
    n = 128
    gens = [torch.Generator().manual_seed(100 + i) for i in range(n)]
    out = SITCOM(num_steps=20).sample(prior, (n, 1, 8, 8), gens, Guidance(op, y[:n]))
    x = out.x.reshape(n, -1)
    residual = (x @ op.matrix.T - y[:n]).norm(dim=1).mean().item()
    # Exact posterior draws have a mean residual of 0.28 here; SITCOM stops at the noise level (0.27).
    assert 0.2 < residual < 0.35
    # An optimization sampler, not an exact one: its mean is much closer to the posterior mean than
    # the prior's (measured 0.68 vs 1.44 of the posterior spread), its spread smaller (trace 0.47).
    scale = cov.diagonal().sum().sqrt()
    assert ((x.double().mean(0) - mean).norm() / scale).item() < 0.85
    # The noise-level stop saves consistency steps (network evaluations).
    full = SITCOM(num_steps=20, stop_at_noise_level=False)
    full.sample(prior, (n, 1, 8, 8), [torch.Generator().manual_seed(100 + i) for i in range(n)], Guidance(op, y[:n]))
    assert out.nfe < full.evaluations == 20 * 30


@pytest.mark.parametrize("placement", ["phase", "objective"])
def test_sitcom_equireg_phase_and_objective(problem, placement):
    from equireg_lit.solvers import SITCOM

    prior, op, y, _, _ = problem
    n = 8

    def run(reg):
        gens = [torch.Generator().manual_seed(i) for i in range(n)]
        reg_gens = [torch.Generator().manual_seed(50 + i) for i in range(n)]
        solver = SITCOM(num_steps=5, consistency_steps=5, equireg_placement=placement, equi_phase_steps=5)
        return solver.sample(prior, (n, 1, 8, 8), gens, Guidance(op, y[:n], reg, reg_gens)).x

    plain = run(None)
    assert torch.equal(run(EquiReg(torch.nn.Identity(), "hflip", alpha=1.0)), plain)  # exactly equivariant f
    assert not torch.allclose(run(EquiReg(FixedConv(1), "hflip", alpha=1.0, reduction="sqnorm")), plain)


def test_daps_matches_the_closed_form_posterior(problem):
    from equireg_lit.solvers import DAPS

    # Measured (128 draws, 50 levels x 5 ODE steps, 50 Langevin steps): mean error 0.07 of the
    # posterior's spread (sampling noise alone 0.09), covariance trace 0.77 of the exact one.
    solver = DAPS(annealing_steps=50, ode_steps=5, langevin_steps=50)
    mean_err, trace_ratio = moments(solver, problem, n=128)
    assert mean_err < 0.25 and 0.6 < trace_ratio < 1.2
    prior_err, _ = moments(DAPS(annealing_steps=50, ode_steps=5, langevin_steps=0), problem, n=128)
    assert prior_err > 5 * mean_err  # without the Langevin steps: prior samples


def test_daps_equireg_enters_the_langevin_drift(problem):
    from equireg_lit.solvers import DAPS

    prior, op, y, _, _ = problem
    n = 8

    def run(reg, penalty_every=None):
        gens = [torch.Generator().manual_seed(i) for i in range(n)]
        reg_gens = [torch.Generator().manual_seed(50 + i) for i in range(n)]
        solver = DAPS(annealing_steps=5, ode_steps=2, langevin_steps=5, penalty_every=penalty_every)
        out = solver.sample(prior, (n, 1, 8, 8), gens, Guidance(op, y[:n], reg, reg_gens))
        assert out.nfe == 10
        return out.x

    plain = run(None)
    assert torch.equal(run(EquiReg(torch.nn.Identity(), "hflip", alpha=1.0)), plain)
    # The penalty's gradient is evaluated once per level by default, every penalty_every Langevin
    # steps otherwise (one evaluation of f each, form equi_plus); both move the draws.
    for every, evaluations in ((None, 5), (2, 15), (1, 25)):
        reg = EquiReg(FixedConv(1), "hflip", form="equi_plus", alpha=100.0)
        assert not torch.allclose(run(reg, every), plain)
        assert reg.f_evaluations == evaluations


def test_deepinv_dps_runs_deepinvs_sampler_and_refuses_what_it_lacks(problem):
    """The peer adapter: deepinv's DPS on our prior moves draws from the prior toward the posterior
    mean as its weight grows, is reproducible from the batch's first generator, and refuses an
    EquiReg term (deepinv's DPS has none)."""
    from equireg_lit.errors import ConfigError
    from equireg_lit.solvers import DeepinvDPS

    prior, op, y, mean, cov = problem
    n = 32

    def draw(weight):
        gens = [torch.Generator().manual_seed(100 + i) for i in range(n)]
        return DeepinvDPS(num_steps=20, weight=weight).sample(prior, (n, 1, 8, 8), gens, Guidance(op, y[:n]))

    out = draw(1.0)
    assert out.x.shape == (n, 1, 8, 8) and out.nfe == 21 and not out.failed
    assert torch.equal(out.x, draw(1.0).x)
    err = lambda x: (x.reshape(n, -1).double().mean(0) - mean).norm().item()  # noqa: E731
    assert err(out.x) < err(draw(0.0).x)
    with pytest.raises(ValueError, match="regularizer and pde_residual"):
        DeepinvDPS(num_steps=2).sample(prior, (1, 1, 8, 8), [torch.Generator()],
                                       Guidance(op, y[:1], EquiReg(torch.nn.Identity(), "hflip")))
    with pytest.raises(ConfigError, match="weight"):
        DeepinvDPS(weight=-1.0)


def test_failures_are_zeroed_and_remembered_at_their_first_step():
    from equireg_lit.solvers.base import SamplingRun

    run = SamplingRun()
    x = torch.ones(3, 1, 2, 2)
    assert torch.equal(run.drop_failed(x, 0), x) and run.failed == {}
    x[1, 0, 0, 0] = float("nan")
    x[2] = 50.0
    y = run.drop_failed(x, 4, bound=10.0)
    assert run.failed == {1: 4, 2: 4} and y[1].eq(0).all() and y[2].eq(0).all() and y[0].eq(1).all()
    x[0] = float("inf")
    run.drop_failed(x, 7, bound=10.0)
    assert run.failed == {0: 7, 1: 4, 2: 4}  # the first failing step stays
