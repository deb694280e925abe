"""DiffPIR (Zhu et al., "Denoising Diffusion Models for Plug-and-Play Image Restoration", CVPRW
2023) with optional EquiReg in its data sub-problem.

Algorithm (per step t of the timestep subsequence, noise level sigma_t = sqrt(1 - abar_t) / sqrt(abar_t)):

    x0_hat  = D(x_t)                                                   Tweedie estimate of the prior
    z       = argmin_z F(z) = ||y - A z||^2 + rho_t ||z - x0_hat||^2   rho_t = lambda sigma_n^2 / sigma_t^2
              EquiReg: ``penalty_steps`` proximal-gradient steps on F + alpha R from that z,
              z <- argmin_z F(z) + 1/2 ||z - (z - grad alpha R(z))||^2  (one evaluation of f each)
    eps_hat = (x_t - sqrt(abar_t) z) / sqrt(1 - abar_t)
    x_prev  = sqrt(abar_prev) z + sqrt(1 - abar_prev) (sqrt(1 - s) eps_hat + sqrt(s) eps)

with s the paper's zeta (``stochasticity`` here: ``zeta`` is DPS's guidance weight), i.e. a DDIM
step from (z, eps_hat) with sigma^2 = s (1 - abar_prev); the last step returns z.
The data sub-problem uses deepinv's ``prox_l2`` for linear operators (closed form for inpainting
and FFT blurs, conjugate gradients otherwise) and Adam steps for nonlinear ones. The penalty is
not placed inside those Adam steps (that costs one evaluation of f per step, 30x the network
evaluations of the sampler); as in DPS, alpha is the size of a gradient step on R, and the data
sub-problem stays exact around it.
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
from equireg_lit.solvers.base import Guidance, SamplerOutput, SamplingRun, Solver, StepCallback, initial_noise


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
            operators).
        data_lr: Adam learning rate of those steps.
        penalty_steps: Proximal-gradient steps on EquiReg's penalty per sampling step (each one
            evaluation of f; the regularizer's ``freq`` / ``schedule`` choose the sampling steps).
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
        penalty_steps: int = 1,
    ):
        if num_steps < 1:
            raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
        check_range("lambda_", lambda_, 0.0, low_open=True)
        check_range("stochasticity", stochasticity, 0.0, 1.0)
        if data_steps < 0:
            raise ConfigError(f"data_steps must be >= 0, got {data_steps}")
        check_range("data_lr", data_lr, 0.0, low_open=True)
        check_range("min_noise_sigma", min_noise_sigma, 0.0, low_open=True)
        if penalty_steps < 1:
            raise ConfigError(f"penalty_steps must be >= 1, got {penalty_steps} (no penalty: regularizer null)")
        self.num_steps, self.lambda_, self.stochasticity, self.clip_x0 = num_steps, lambda_, stochasticity, clip_x0
        self.data_steps, self.data_lr, self.min_noise_sigma = data_steps, data_lr, min_noise_sigma
        self.penalty_steps = penalty_steps

    def data_solution(self, x0: Tensor, guidance: Guidance, rho: float, step: int, total: int) -> Tensor:
        """``argmin_z F(z) = ||y - A z||^2 + rho ||z - x0||^2``, per sample, then EquiReg's
        proximal-gradient steps on ``F + alpha R`` where the penalty is active."""
        z = self.solve_data(x0, guidance, rho)
        reg = guidance.regularizer
        if reg is None or not reg.is_active(step, total):
            return z
        for _ in range(self.penalty_steps):
            with torch.enable_grad():
                zg = z.detach().requires_grad_(True)
                energy = reg(zg, step=step, total_steps=total, generator=guidance.reg_generators)
                (grad,) = torch.autograd.grad(energy.sum(), zg)
            z = self.solve_data(x0, guidance, rho, anchor=z.detach() - grad)
        return z

    def solve_data(self, x0: Tensor, guidance: Guidance, rho: float, anchor: Tensor | None = None) -> Tensor:
        """``argmin_z ||y - A z||^2 + rho ||z - x0||^2 (+ 1/2 ||z - anchor||^2)``: deepinv's
        ``prox_l2`` for linear operators (the two quadratics merge into one around their weighted
        centre), Adam steps from ``anchor`` (or ``x0``) otherwise."""
        physics, y = guidance.physics, guidance.y
        if isinstance(physics, LinearPhysics):
            with torch.no_grad():
                if anchor is None:
                    return physics.prox_l2(x0, y, gamma=1.0 / rho)
                # 1/2||Az - y||^2 + rho/2 ||z - x0||^2 + 1/4 ||z - a||^2 = ... + (2 rho + 1)/4 ||z - c||^2
                centre = (2 * rho * x0 + anchor) / (2 * rho + 1)
                return physics.prox_l2(centre, y, gamma=2.0 / (2 * rho + 1))
        z = (x0 if anchor is None else anchor).detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=self.data_lr)
        with torch.enable_grad():
            for _ in range(self.data_steps):
                r = y - physics.A(z)
                loss = r.reshape(r.shape[0], -1).pow(2).sum(1) + rho * (z - x0).reshape(z.shape[0], -1).pow(2).sum(1)
                if anchor is not None:
                    loss = loss + 0.5 * (z - anchor).reshape(z.shape[0], -1).pow(2).sum(1)
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
            x = run.drop_failed(x, i)
            if on_step is not None:
                on_step(i, n, z.detach())
        return run.output(x, n)
