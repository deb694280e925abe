"""SITCOM (Alkhouri et al., "SITCOM: Step-wise Triple-Consistent Diffusion Sampling for Inverse
Problems", ICML 2025) with EquiReg as the authors' reference code adds it.

Per outer step t (N evenly spaced timesteps; the paper's 20):

    v      <- x_t; K Adam steps (the measurement-consistency steps) on
              ||A(x0_hat(v, t)) - y||^2 + lambda_b ||v - x_t||^2,
              a sample stops once ||A(x0_hat) - y||^2 < (sigma_n + 0.001)^2 m (the noise level)
    x0     =  x0_hat(v*, t)                                    clamped to [-1, 1]
    [EquiReg "phase": Adam steps on x0 minimizing the penalty alone (the reference code);
     EquiReg "objective": the penalty of x0_hat(v) added to the objective above]
    x_t'   =  sqrt(abar_t') x0 + sqrt(1 - abar_t') eps          (fresh noise; the last step returns x0)

As in the authors' code (``SITCOM_with_noise.py``) the returned x0 of an outer step is the one
evaluated before the last Adam update, and ``lambda_b`` defaults to 0 (that code has no backward
term). Unlike it, stopping and noise are per sample, and the final sample is the last x0, not the
best-PSNR one (which needs the ground truth).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from equireg_lit.diffusion.priors import DiffusionPrior
from equireg_lit.diffusion.scheduler import DDIMScheduler
from equireg_lit.errors import ConfigError, check_range
from equireg_lit.regularizer import equi_phase
from equireg_lit.solvers.base import Guidance, SamplerOutput, SamplingRun, Solver, StepCallback, Timer, initial_noise


class SITCOM(Solver):
    """SITCOM sampling with the measurement-consistency steps as the cost lever.

    Args:
        num_steps: Outer sampling steps N (the paper's default 20).
        consistency_steps: Adam steps K on the network input per outer step (default 30).
        lr: Adam learning rate of those steps and of the equi phase (0.02).
        lambda_b: Weight of ``||v - x_t||^2`` (backward consistency; 0 in the authors' code).
        equireg_placement: ``phase`` (Adam steps on the penalty alone after the K steps, as the
            reference code) or ``objective`` (the penalty inside the consistency objective).
        equi_phase_steps: Adam steps of the equi phase (30 in the reference code).
        stop_at_noise_level: Stop a sample's consistency steps once its residual reaches the
            noise level.
    """

    def __init__(self, num_steps: int = 20, consistency_steps: int = 30, lr: float = 0.02, lambda_b: float = 0.0,
                 equireg_placement: Literal["phase", "objective"] = "phase", equi_phase_steps: int = 30,
                 stop_at_noise_level: bool = True):
        if num_steps < 1:
            raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
        if consistency_steps < 0 or equi_phase_steps < 0:
            raise ConfigError(f"consistency_steps and equi_phase_steps must be >= 0, got "
                              f"{consistency_steps} and {equi_phase_steps}")
        check_range("lr", lr, 0.0, low_open=True)
        check_range("lambda_b", lambda_b, 0.0)
        if equireg_placement not in ("phase", "objective"):
            raise ConfigError(f"unknown equireg_placement {equireg_placement!r}; valid: phase, objective")
        self.num_steps, self.consistency_steps, self.lr, self.lambda_b = num_steps, consistency_steps, lr, lambda_b
        self.equireg_placement, self.equi_phase_steps = equireg_placement, equi_phase_steps
        self.stop_at_noise_level = stop_at_noise_level
        self.evaluations = 0

    def consistency(self, prior: DiffusionPrior, scheduler: DDIMScheduler, x_t: Tensor, t: int, guidance: Guidance,
                    step: int, total: int, net: Timer) -> Tensor:
        """The K measurement-consistency steps on the network input; returns x0_hat(v*)."""
        b = x_t.shape[0]
        tt = torch.full((b,), t, device=x_t.device, dtype=torch.long)
        reg = guidance.regularizer
        in_objective = reg is not None and self.equireg_placement == "objective"
        m = guidance.y[0].numel()
        sigma_n = float(getattr(guidance.physics, "noise_sigma", 0.0))
        threshold = (sigma_n + 0.001) ** 2 * m  # the authors' noise-level stop
        v = x_t.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([v], lr=self.lr)
        done = torch.zeros(b, dtype=torch.bool, device=x_t.device)
        x0_out = None
        with torch.enable_grad():
            for _ in range(max(self.consistency_steps, 1)):
                with net:
                    eps = prior(v, tt)
                self.evaluations += 1
                x0, _ = scheduler.pred_original(eps, t, v)
                r = (guidance.physics.A(x0) - guidance.y).reshape(b, -1).pow(2).sum(1)
                x0_out = x0.detach() if x0_out is None else torch.where(done.view(-1, 1, 1, 1), x0_out, x0.detach())
                if self.stop_at_noise_level:
                    done = done | (r.detach() < threshold)
                if self.consistency_steps == 0 or bool(done.all()):
                    break
                loss = r + self.lambda_b * (v - x_t).reshape(b, -1).pow(2).sum(1)
                if in_objective:
                    loss = loss + reg(x0, step=step, total_steps=total, generator=guidance.reg_generators)
                opt.zero_grad(set_to_none=True)
                with net:
                    loss.masked_fill(done, 0.0).sum().backward()
                frozen = v.detach().clone()
                opt.step()
                with torch.no_grad():
                    v.copy_(torch.where(done.view(-1, 1, 1, 1), frozen, v))
        return x0_out

    def sample(self, prior: DiffusionPrior, shape: tuple[int, ...], generators: list[torch.Generator],
               guidance: Guidance | None = None, on_step: StepCallback | None = None) -> SamplerOutput:
        run = SamplingRun()
        self.evaluations = 0
        scheduler = DDIMScheduler(prior.schedule, self.num_steps, clip_sample=True)
        n = len(scheduler.timesteps)
        x = initial_noise(prior, shape, generators)
        device = x.device
        for i, t in enumerate(scheduler.timesteps):
            if guidance is None:  # unconditional: one network evaluation, no consistency steps
                with torch.no_grad(), run.net:
                    eps = prior(x, torch.full((shape[0],), t, device=device, dtype=torch.long))
                self.evaluations += 1
                x0, _ = scheduler.pred_original(eps, t, x)
            else:
                x0 = self.consistency(prior, scheduler, x, t, guidance, i, n, run.net)
                if guidance.regularizer is not None and self.equireg_placement == "phase":
                    x0 = equi_phase(guidance.regularizer, x0, self.equi_phase_steps, self.lr,
                                    step=i, total_steps=n, generator=guidance.reg_generators)
            # Re-noise to the next level: x_t' = sqrt(abar_t') x0 + sqrt(1 - abar_t') eps.
            sigma = (1 - scheduler.alpha_prod_prev(t)) ** 0.5
            x = scheduler.step_from(x0, torch.zeros_like(x0), t, generators, sigma).prev_sample.detach()
            x = run.drop_failed(x, i)
            if on_step is not None:
                on_step(i, n, x0.detach())
        return run.output(x, self.evaluations)
