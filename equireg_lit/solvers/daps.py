"""DAPS (Zhang et al., "Improving Diffusion Inverse Problem Solving with Decoupled Noise
Annealing", CVPR 2025) with EquiReg in the Langevin drift.

Annealing over noise levels sigma_0 > ... > sigma_{N-1} (EDM spacing, rho 7) then 0:

    x0_hat = probability-flow ODE from (x_i, sigma_i) to 0     (Euler, ``ode_steps`` evaluations)
    x0     <- x0_hat; ``langevin_steps`` times:
              x0 <- x0 - lr_i grad[ ||x0 - x0_hat||^2 / (2 sigma_i^2) + ||A(x0) - y||^2 / (2 tau^2) + R(x0) ]
                       + sqrt(2 lr_i) eps
    x_{i+1} = x0 + sigma_{i+1} eps

``lr_i`` decays linearly from ``lr`` to ``lr * lr_min_ratio`` over the annealing, as in the
authors' code; DAPS-1K is 200 levels x 5 ODE steps. The VP (DDPM) network serves as the
denoiser D(x, sigma) through ``abar = 1 / (1 + sigma^2)`` (``DeepinvDenoiser``).
"""

from __future__ import annotations


import torch
from torch import Tensor

from equireg_lit.diffusion.deepinv_adapter import DeepinvDenoiser
from equireg_lit.diffusion.priors import DiffusionPrior
from equireg_lit.errors import ConfigError, check_range
from equireg_lit.rng import per_sample_randn
from equireg_lit.solvers.base import Guidance, SamplerOutput, SamplingRun, Solver, StepCallback, Timer, initial_noise


def edm_sigmas(num: int, sigma_max: float, sigma_min: float, rho: float = 7.0) -> list[float]:
    """``num`` noise levels from ``sigma_max`` to ``sigma_min`` with Karras et al.'s rho spacing."""
    if num == 1:
        return [sigma_max]
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [(a + i / (num - 1) * (b - a)) ** rho for i in range(num)]


class DAPS(Solver):
    """Decoupled annealing posterior sampling.

    Args:
        annealing_steps: Noise levels N (DAPS-1K: 200).
        ode_steps: Euler steps of the probability-flow ODE per level (DAPS-1K: 5).
        langevin_steps: Langevin steps on x0 per level (100).
        lr: Langevin step size at the first level (1e-4).
        lr_min_ratio: Step size at the last level, relative to ``lr`` (0.01).
        tau: Measurement-noise scale of the Langevin likelihood (0.01, the authors' default).
        sigma_max: First noise level (100).
        sigma_min: Last noise level before 0 (0.1).
        ode_sigma_min: Last level of each ODE solve before 0 (0.01).
        rho: EDM spacing exponent (7).
        penalty_every: Langevin steps between evaluations of EquiReg's gradient, which is reused
            in between (None: once per level, at the level's first step; 1: every step, which
            costs ``langevin_steps`` evaluations of f per level, 20x DAPS-1K's network work).
    """

    def __init__(self, annealing_steps: int = 200, ode_steps: int = 5, langevin_steps: int = 100, lr: float = 1e-4,
                 lr_min_ratio: float = 0.01, tau: float = 0.01, sigma_max: float = 100.0, sigma_min: float = 0.1,
                 ode_sigma_min: float = 0.01, rho: float = 7.0, penalty_every: int | None = None):
        if annealing_steps < 1 or ode_steps < 1 or langevin_steps < 0:
            raise ConfigError(f"annealing_steps and ode_steps must be >= 1 and langevin_steps >= 0, got "
                              f"{annealing_steps}, {ode_steps}, {langevin_steps}")
        for name, value in (("lr", lr), ("tau", tau), ("sigma_min", sigma_min), ("ode_sigma_min", ode_sigma_min),
                            ("rho", rho)):
            check_range(name, value, 0.0, low_open=True)
        check_range("lr_min_ratio", lr_min_ratio, 0.0, 1.0)
        check_range("sigma_max", sigma_max, sigma_min, low_open=True)
        self.annealing_steps, self.ode_steps, self.langevin_steps = annealing_steps, ode_steps, langevin_steps
        self.lr, self.lr_min_ratio, self.tau = lr, lr_min_ratio, tau
        self.sigma_max, self.sigma_min, self.ode_sigma_min, self.rho = sigma_max, sigma_min, ode_sigma_min, rho
        if penalty_every is not None and penalty_every < 1:
            raise ConfigError(f"penalty_every must be >= 1 or null (once per level), got {penalty_every}")
        self.penalty_every = penalty_every or max(langevin_steps, 1)
        self.num_steps = annealing_steps

    def ode(self, denoiser: DeepinvDenoiser, x: Tensor, sigma: float, net: Timer) -> Tensor:
        """x0_hat: Euler steps of dx/dsigma = (x - D(x, sigma)) / sigma from ``sigma`` to 0."""
        levels = edm_sigmas(self.ode_steps, sigma, min(self.ode_sigma_min, sigma), self.rho) + [0.0]
        with torch.no_grad():
            for s, s_next in zip(levels[:-1], levels[1:], strict=True):
                with net:
                    d = denoiser(x, s)
                x = d if s_next == 0 else x + (s_next - s) * (x - d) / s
        return x

    def langevin(self, x0_hat: Tensor, sigma: float, lr: float, guidance: Guidance, generators: list[torch.Generator],
                 step: int, total: int) -> Tensor:
        """Langevin dynamics on x0 around x0_hat under the measurement likelihood (and EquiReg)."""
        reg, physics, y = guidance.regularizer, guidance.physics, guidance.y
        penalize = reg is not None and reg.is_active(step, total)
        x0 = x0_hat.detach().clone()
        b = x0.shape[0]
        penalty_grad = torch.zeros_like(x0)
        for k in range(self.langevin_steps):
            with torch.enable_grad():
                z = x0.requires_grad_(True)
                r = physics.A(z) - y
                energy = r.reshape(b, -1).pow(2).sum(1) / (2 * self.tau**2)
                energy = energy + (z - x0_hat).reshape(b, -1).pow(2).sum(1) / (2 * sigma**2)
                (grad,) = torch.autograd.grad(energy.sum(), z)
                if penalize and k % self.penalty_every == 0:
                    zr = z.detach().requires_grad_(True)
                    penalty = reg(zr, step=step, total_steps=total, generator=guidance.reg_generators)
                    (penalty_grad,) = torch.autograd.grad(penalty.sum(), zr)
            grad = grad + penalty_grad
            x0 = (z.detach() - lr * grad + (2 * lr) ** 0.5 * per_sample_randn(tuple(z.shape), generators, z)).detach()
        return x0

    def sample(self, prior: DiffusionPrior, shape: tuple[int, ...], generators: list[torch.Generator],
               guidance: Guidance | None = None, on_step: StepCallback | None = None) -> SamplerOutput:
        run = SamplingRun()
        denoiser = DeepinvDenoiser(prior)
        sigmas = edm_sigmas(self.annealing_steps, self.sigma_max, self.sigma_min, self.rho) + [0.0]
        n = self.annealing_steps
        x = self.sigma_max * initial_noise(prior, shape, generators)
        for i in range(n):
            sigma = sigmas[i]
            x0 = self.ode(denoiser, x, sigma, run.net)
            if guidance is not None:
                lr = self.lr * (1 + i / max(n - 1, 1) * (self.lr_min_ratio - 1))
                x0 = self.langevin(x0, sigma, lr, guidance, generators, i, n)
            x = x0 + sigmas[i + 1] * per_sample_randn(shape, generators, x0) if sigmas[i + 1] > 0 else x0
            x = run.drop_failed(x, i)
            if on_step is not None:
                on_step(i, n, x0.detach())
        return run.output(x, n * self.ode_steps)
