"""DiffPIR (Zhu et al., "Denoising Diffusion Models for Plug-and-Play Image Restoration", CVPRW
2023) with optional EquiReg in its data sub-problem.

Algorithm (per step t of the timestep subsequence, noise level sigma_t = sqrt(1 - abar_t) / sqrt(abar_t)):

    x0_hat  = D(x_t)                                                   Tweedie estimate of the prior
    z       = argmin_z ||y - A z||^2 + rho_t ||z - x0_hat||^2          rho_t = lambda sigma_n^2 / sigma_t^2
              (+ alpha R(z): EquiReg, gradient steps from the closed-form z)
    eps_hat = (x_t - sqrt(abar_t) z) / sqrt(1 - abar_t)
    x_prev  = sqrt(abar_prev) z + sqrt(1 - abar_prev) (sqrt(1 - s) eps_hat + sqrt(s) eps)

with s the paper's zeta (``stochasticity`` here: ``zeta`` is DPS's guidance weight), i.e. a DDIM
step from (z, eps_hat) with sigma^2 = s (1 - abar_prev); the last step returns z.
The data sub-problem uses deepinv's ``prox_l2`` for linear operators (closed form for inpainting
and FFT blurs, conjugate gradients otherwise) and Adam steps for nonlinear ones.
Differences from ``deepinv.sampling.DiffPIR``: that class works on [0, 1] images with a
``denoiser(x, sigma)``, spaces timesteps quadratically and starts from ``A^T y``; here the prior's
epsilon network is used directly on [-1, 1] images, timesteps are evenly spaced (as every sampler
here) and sampling starts from noise, drawn per sample.
"""

from __future__ import annotations


import torch
from deepinv.physics import LinearPhysics
from torch import Tensor

from equireg_lit.diffusion.priors import DiffusionPrior
from equireg_lit.diffusion.scheduler import DDIMScheduler
from equireg_lit.errors import ConfigError, check_range
from equireg_lit.solvers.base import Guidance, SamplerOutput, SamplingRun, Solver, StepCallback, drop_failed, initial_noise


class DiffPIR(Solver):
    """DiffPIR sampling; EquiReg enters the data sub-problem.

    Args:
        num_steps: Sampling steps (evenly spaced timesteps of the prior's T).
        lambda_: Data-consistency strength: ``rho_t = lambda_ sigma_n^2 / sigma_t^2`` (deepinv's
            ``lambda_``; the paper finds 3-25 best, 7 is deepinv's default).
        stochasticity: Share of fresh noise in the re-noising, the paper's and deepinv's ``zeta``
            (0: deterministic, 1: fully stochastic; deepinv's default 0.1, the paper's 0.3).
        clip_x0: Clamp the prior's estimate to [-1, 1] before the data step.
        data_steps: Adam steps of the data sub-problem when it has no closed form (nonlinear
            operators) or includes EquiReg's penalty.
        data_lr: Adam learning rate of those steps.
        min_noise_sigma: Noise level used in ``rho_t`` when the operator is noiseless.
    """

    def __init__(
        self,
        num_steps: int = 100,
        lambda_: float = 7.0,
        stochasticity: float = 0.3,
        clip_x0: bool = True,
        data_steps: int = 30,
        data_lr: float = 0.02,
        min_noise_sigma: float = 0.01,
    ):
        if num_steps < 1:
            raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
        check_range("lambda_", lambda_, 0.0, low_open=True)
        check_range("stochasticity", stochasticity, 0.0, 1.0)
        if data_steps < 0:
            raise ConfigError(f"data_steps must be >= 0, got {data_steps}")
        check_range("data_lr", data_lr, 0.0, low_open=True)
        check_range("min_noise_sigma", min_noise_sigma, 0.0, low_open=True)
        self.num_steps, self.lambda_, self.stochasticity, self.clip_x0 = num_steps, lambda_, stochasticity, clip_x0
        self.data_steps, self.data_lr, self.min_noise_sigma = data_steps, data_lr, min_noise_sigma

    def data_solution(self, x0: Tensor, guidance: Guidance, rho: float, step: int, total: int) -> Tensor:
        """``argmin_z ||y - A z||^2 + rho ||z - x0||^2 (+ R(z))``, per sample."""
        physics, y, reg = guidance.physics, guidance.y, guidance.regularizer
        linear = isinstance(physics, LinearPhysics)
        with torch.no_grad():
            z = physics.prox_l2(x0, y, gamma=1.0 / rho) if linear else x0.clone()
        penalize = reg is not None and reg.is_active(step, total)
        if linear and not penalize:
            return z
        z = z.detach().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=self.data_lr)
        with torch.enable_grad():
            for _ in range(self.data_steps):
                r = y - physics.A(z)
                loss = r.reshape(r.shape[0], -1).pow(2).sum(1) + rho * (z - x0).reshape(z.shape[0], -1).pow(2).sum(1)
                if penalize:
                    loss = loss + reg(z, step=step, total_steps=total, generator=guidance.reg_generators)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                opt.step()
        return z.detach()

    def sample(self, prior: DiffusionPrior, shape: tuple[int, ...], generators: list[torch.Generator],
               guidance: Guidance | None = None, on_step: StepCallback | None = None) -> SamplerOutput:
        run = SamplingRun()
        scheduler = DDIMScheduler(prior.schedule, self.num_steps, clip_sample=self.clip_x0)
        n = len(scheduler.timesteps)
        x = initial_noise(prior, shape, generators)
        device = x.device
        sigma_n = max(float(getattr(guidance.physics, "noise_sigma", 0.0)), self.min_noise_sigma) if guidance else 0.0
        for i, t in enumerate(scheduler.timesteps):
            a_t, a_prev = scheduler.alpha_prod(t), scheduler.alpha_prod_prev(t)
            with torch.no_grad(), run.net:
                eps = prior(x, torch.full((shape[0],), t, device=device, dtype=torch.long))
            x0, _ = scheduler.pred_original(eps, t, x)
            z = x0
            if guidance is not None:
                rho = self.lambda_ * sigma_n**2 * a_t / (1 - a_t)  # lambda sigma_n^2 / sigma_t^2
                z = self.data_solution(x0, guidance, rho, i, n)
            eps_hat = (x - a_t**0.5 * z) / (1 - a_t) ** 0.5
            # DDIM from (z, eps_hat) with sigma^2 = s (1 - abar_prev); the last step returns z.
            x = scheduler.step_from(z, eps_hat, t, generators, (self.stochasticity * (1 - a_prev)) ** 0.5).prev_sample
            x = drop_failed(x, run.failed, i)
            if on_step is not None:
                on_step(i, n, z.detach())
        return run.output(x, n)
