"""Diffusion Posterior Sampling (Chung et al. 2023) with optional EquiReg.

Each step: the scheduler step (:class:`~equireg_lit.diffusion.scheduler.DDIMScheduler`; all T
timesteps with ``eta = 1`` is DDPM ancestral sampling, the DPS default; fewer steps the
reduced-step DDIM variant), the guidance gradient through the clean estimate, the update.
"""

from __future__ import annotations


import torch

from equireg_lit.diffusion.priors import DiffusionPrior
from equireg_lit.errors import ConfigError, check_range
from equireg_lit.regularizer import equi_phase
from equireg_lit.diffusion.scheduler import DDIMScheduler
from equireg_lit.solvers.base import Guidance, SamplerOutput, SamplingRun, Solver, StepCallback, initial_noise


class DPS(Solver):
    """DPS guidance ``x_{t-1} -= zeta * grad_{x_t} sum_i loss_i`` on DDPM/DDIM steps.

    Args:
        num_steps: Sampling steps; the prior's T (1000) is full DDPM, fewer is DDIM-style.
        zeta: Guidance step size (DPS at 256x256: 0.3 SR/deblur, 0.5 inpainting, 1.0 phase retrieval).
        eta: DDIM stochasticity; 1.0 reproduces DDPM ancestral noise.
        clip_x0: Clamp x0_hat to [-1, 1] before the update and the loss, as the DPS code does.
        equi_phase_steps: Optimizer steps of the equi phase on x0_hat after guidance (0 = off);
            needs a regularizer.
        equi_phase_lr: Adam learning rate of the equi phase.
        divergence_threshold: A sample whose ``|x_t|`` exceeds this fails like NaN (the noisy
            iterate of unit-scale data stays within a few units; 1e3 is a blow-up).
    """

    def __init__(
        self,
        num_steps: int = 1000,
        zeta: float = 0.5,
        eta: float = 1.0,
        clip_x0: bool = True,
        equi_phase_steps: int = 0,
        equi_phase_lr: float = 1e-2,
        divergence_threshold: float = 1e3,
    ):
        if num_steps < 1:
            raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
        check_range("zeta", zeta, 0.0)
        check_range("eta", eta, 0.0, 1.0)
        if equi_phase_steps < 0:
            raise ConfigError(f"equi_phase_steps must be >= 0, got {equi_phase_steps}")
        check_range("equi_phase_lr", equi_phase_lr, 0.0, low_open=True)
        check_range("divergence_threshold", divergence_threshold, 0.0, low_open=True)
        self.num_steps = num_steps
        self.divergence_threshold = float(divergence_threshold)
        self.zeta = zeta
        self.eta = eta
        self.clip_x0 = clip_x0
        self.equi_phase_steps = equi_phase_steps
        self.equi_phase_lr = equi_phase_lr

    def sample(self, prior: DiffusionPrior, shape: tuple[int, ...], generators: list[torch.Generator],
               guidance: Guidance | None = None, on_step: StepCallback | None = None) -> SamplerOutput:
        run = SamplingRun()
        scheduler = DDIMScheduler(prior.schedule, self.num_steps, eta=self.eta, clip_sample=self.clip_x0)
        n = len(scheduler.timesteps)
        x = initial_noise(prior, shape, generators)
        device = x.device
        for i, t in enumerate(scheduler.timesteps):
            tt = torch.full((shape[0],), t, device=device, dtype=torch.long)
            with torch.enable_grad() if guidance is not None else torch.no_grad():
                x_in = x.detach().requires_grad_(guidance is not None)
                with run.net:
                    eps = prior(x_in, tt)
                out = scheduler.step(eps, t, x_in, generators)
                x0, x_prev = out.pred_original_sample, out.prev_sample
                if guidance is not None:
                    # DPS: x_{t-1} -= zeta * grad_{x_t} sum_i loss_i(x0_hat_i(x_t))
                    loss = guidance.loss(x0, step=i, total_steps=n)
                    with run.net:
                        (grad,) = torch.autograd.grad(loss.sum(), x_in)
                    x_prev = x_prev - self.zeta * grad
                    if self.equi_phase_steps and guidance.regularizer is not None:
                        # Move the clean-estimate component of x_{t-1} toward lower equivariance error.
                        x0_eq = equi_phase(
                            guidance.regularizer, x0, self.equi_phase_steps, self.equi_phase_lr,
                            step=i, total_steps=n, generator=guidance.reg_generators,
                        )
                        x_prev = x_prev + scheduler.alpha_prod_prev(t) ** 0.5 * (x0_eq - x0.detach())
            x = x_prev.detach()
            x = run.drop_failed(x, i, self.divergence_threshold)
            if on_step is not None:
                on_step(i, n, x0.detach())
        return run.output(x, n)
