"""ReSample (Song et al., "Solving Inverse Problems with Latent Diffusion Models via Hard Data
Consistency", ICLR 2024) on a latent diffusion prior, with EquiReg in its consistency objective.

Per step t (N DDIM steps, eta 0 as the authors' code):

    z_{t-1} = DDIM(z_t) - zeta * abar_t * grad_{z_t} ||y - A(D(z0_hat(z_t)))||    (the DPS step; zeta 0.5)

and every ``resample_every``-th step of the last two thirds (index counted down to 0 as in the
authors' ``ddim.py``):

    z0'  = Tweedie estimate after ``time_travel_steps`` unconditional DDIM steps from z_{t-1}
    z0*  = argmin ||y - A(x)||^2 from D(z0'), then E(x)        (middle third: pixel space)
           argmin ||y - A(D(z))||^2 + EquiReg(z) from z0'       (last third: latent space)
    z_{t-1} ~ N(sqrt(a) z0*, 1 - a) * N(z_{t-1}, s2)                     (stochastic resampling)
              a = abar_{t-1},  s2 = gamma (1 - a) / (1 - abar_t) (1 - abar_t / a)

and at the end one more latent consistency fit of the final latent. The consistency fits are AdamW
runs (lr 1e-2 pixels, 5e-3 latents, as the authors' code) with a budget of steps, stopped per
sample at the noise level (the authors' code stops at a fixed MSE of 1e-6 and notes it "needs
tuning according to noise level"; here ``(sigma_n + 1e-3)^2``, the discrepancy principle) or, in
latent space after ``patience`` steps, when the loss rises above its value ``patience`` steps
earlier. EquiReg (f = the decoder or EquiCon) enters the latent consistency objective and, as in
every DPS-family sampler here, the DPS step's loss. Unlike the authors' code all stopping, noise
and losses are per sample, so a sample's result does not depend on its batch.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from equireg_lit.diffusion.latent import LatentDiffusionPrior
from equireg_lit.diffusion.scheduler import DDIMScheduler
from equireg_lit.errors import ConfigError, check_range
from equireg_lit.rng import per_sample_randn
from equireg_lit.solvers.base import Guidance, SamplerOutput, SamplingRun, Solver, StepCallback, initial_noise

# objective(v) -> (per-sample data misfit used for stopping, per-sample loss to minimize)
Objective = Callable[[Tensor], tuple[Tensor, Tensor]]


def fit_per_sample(start: Tensor, objective: Objective, steps: int, lr: float, threshold: float,
                   patience: int = 0) -> Tensor:
    """AdamW on ``start`` minimizing each sample's loss; a sample stops (and keeps its value) once
    its misfit is below ``threshold`` or, with ``patience`` > 0, rises above its value ``patience``
    steps earlier. Adam acts elementwise, so samples do not influence each other."""
    v = start.detach().clone().requires_grad_(True)
    if steps <= 0:
        return v.detach()
    opt = torch.optim.AdamW([v], lr=lr)
    done = torch.zeros(v.shape[0], dtype=torch.bool, device=v.device)
    history: list[Tensor] = []
    keep = (-1,) + (1,) * (v.ndim - 1)
    with torch.enable_grad():
        for it in range(steps):
            misfit, loss = objective(v)
            misfit = misfit.detach()
            done = done | (misfit < threshold)
            if patience:
                if it >= patience:
                    done = done | (misfit > history.pop(0))
                history.append(misfit)
            if bool(done.all()):
                break
            opt.zero_grad(set_to_none=True)
            loss.masked_fill(done, 0.0).sum().backward()
            frozen = v.detach().clone()
            opt.step()
            with torch.no_grad():
                v.copy_(torch.where(done.view(keep), frozen, v))
    return v.detach()


def stochastic_resample(z0: Tensor, z_t: Tensor, alpha_prod: float, variance: float,
                        generators: list[torch.Generator]) -> Tensor:
    """ReSample's draw of ``z_t`` given the consistent ``z0`` and the unconditional ``z_t``: the
    product of ``N(sqrt(a) z0, 1 - a)`` (the forward process from ``z0``) and ``N(z_t, variance)``
    (trust in the unconditional sample; a larger ``variance`` pulls harder toward ``z0``)."""
    a = alpha_prod
    mean = (variance * a**0.5 * z0 + (1 - a) * z_t) / (variance + 1 - a)
    std = (1.0 / (1.0 / variance + 1.0 / (1 - a))) ** 0.5
    return mean + std * per_sample_randn(tuple(z0.shape), generators, z0)


class ReSample(Solver):
    """ReSample: latent DPS steps with hard data consistency and stochastic resampling.

    Args:
        num_steps: DDIM steps N (the paper's 500).
        zeta: DPS step scale; the step is ``zeta * abar_t`` times the gradient (0.5 in the authors' code).
        consistency_steps: Budget of each latent consistency fit (AdamW steps, each a decoder
            forward and backward; 500 in the authors' code). The cost lever.
        pixel_consistency_steps: Budget of each pixel-space fit (no network; 2000 in the authors' code).
        resample_every: Hard consistency on every this-many-th step of the last two thirds (10).
        time_travel_steps: Unconditional DDIM steps taken to get the estimate that the
            consistency fit starts from (5).
        gamma: Scale of the resampling variance, the distrust of the unconditional sample (the
            authors' 40, "tuned for each task"; larger pulls harder toward the consistent estimate).
        latent_lr: AdamW learning rate of the latent fits.
        pixel_lr: AdamW learning rate of the pixel fits.
        patience: Latent fits stop a sample once its misfit exceeds its value this many steps
            earlier (200; 0 = never).
        eta: DDIM stochasticity of the base steps (0 in the authors' code).
        divergence_threshold: A sample whose latent exceeds this in absolute value has failed.
    """

    latent = True

    def __init__(self, num_steps: int = 500, zeta: float = 0.5, consistency_steps: int = 500,
                 pixel_consistency_steps: int = 2000, resample_every: int = 10, time_travel_steps: int = 5,
                 gamma: float = 40.0, latent_lr: float = 5e-3, pixel_lr: float = 1e-2, patience: int = 200,
                 eta: float = 0.0, divergence_threshold: float = 1e4):
        if num_steps < 1 or resample_every < 1:
            raise ConfigError(f"num_steps and resample_every must be >= 1, got {num_steps} and {resample_every}")
        if time_travel_steps < 1:
            raise ConfigError(f"time_travel_steps must be >= 1 (the fit starts from an estimate that many steps "
                              f"ahead), got {time_travel_steps}")
        for name, value in (("consistency_steps", consistency_steps),
                            ("pixel_consistency_steps", pixel_consistency_steps), ("patience", patience)):
            if value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        check_range("zeta", zeta, 0.0)
        check_range("gamma", gamma, 0.0, low_open=True)
        check_range("latent_lr", latent_lr, 0.0, low_open=True)
        check_range("pixel_lr", pixel_lr, 0.0, low_open=True)
        check_range("eta", eta, 0.0, 1.0)
        check_range("divergence_threshold", divergence_threshold, 0.0, low_open=True)
        self.num_steps, self.zeta, self.eta = num_steps, zeta, eta
        self.consistency_steps, self.pixel_consistency_steps = consistency_steps, pixel_consistency_steps
        self.resample_every, self.time_travel_steps, self.gamma = resample_every, time_travel_steps, gamma
        self.latent_lr, self.pixel_lr, self.patience = latent_lr, pixel_lr, patience
        self.divergence_threshold = float(divergence_threshold)
        self.resamples = 0  # hard-consistency events in the last run (pixel and latent)

    def stage(self, index: int, total: int) -> str | None:
        """``pixel``, ``latent`` or None: the hard consistency at ``index`` (counted down to 0)."""
        split = total // 3
        if not 0 < index <= total - split or index % self.resample_every:
            return None
        return "pixel" if index >= split else "latent"

    def latent_fit(self, prior: LatentDiffusionPrior, guidance: Guidance, z: Tensor, threshold: float,
                   step: int, total: int) -> Tensor:
        """``argmin_z ||y - A(D(z))||^2`` (per-sample mean) + the EquiReg penalty, from ``z``."""
        reg = guidance.regularizer

        def objective(v: Tensor) -> tuple[Tensor, Tensor]:
            r = (guidance.y - guidance.physics.A(prior.decode(v))).reshape(v.shape[0], -1).pow(2).mean(1)
            loss = r if reg is None else r + reg(v, step=step, total_steps=total, generator=guidance.reg_generators)
            return r, loss

        return fit_per_sample(z, objective, self.consistency_steps, self.latent_lr, threshold, self.patience)

    def pixel_fit(self, prior: LatentDiffusionPrior, guidance: Guidance, z: Tensor, threshold: float) -> Tensor:
        """``argmin_x ||y - A(x)||^2`` from ``D(z)``, encoded back to a latent."""
        def objective(x: Tensor) -> tuple[Tensor, Tensor]:
            r = (guidance.y - guidance.physics.A(x)).reshape(x.shape[0], -1).pow(2).mean(1)
            return r, r

        with torch.no_grad():
            x = prior.decode(z)
        x = fit_per_sample(x, objective, self.pixel_consistency_steps, self.pixel_lr, threshold)
        with torch.no_grad():
            return prior.encode(x)

    def sample(self, prior: LatentDiffusionPrior, shape: tuple[int, ...], generators: list[torch.Generator],
               guidance: Guidance | None = None, on_step: StepCallback | None = None) -> SamplerOutput:
        """``shape`` is the images' ``[B, C, H, W]``; sampling runs on ``prior``'s latents."""
        if not isinstance(prior, LatentDiffusionPrior):
            raise ConfigError(f"ReSample needs a LatentDiffusionPrior, got {type(prior).__name__}; "
                              "for pixel-space priors use DPS or DAPS")
        run = SamplingRun()
        self.resamples = 0
        b = shape[0]
        scheduler = DDIMScheduler(prior.schedule, self.num_steps, eta=self.eta, clip_sample=False)
        timesteps, n = scheduler.timesteps, len(scheduler.timesteps)
        latent_guidance = None if guidance is None else guidance.in_latent_space(prior.decode)
        sigma_n = 0.0 if guidance is None else float(getattr(guidance.physics, "noise_sigma", 0.0))
        threshold = (sigma_n + 1e-3) ** 2  # per-sample mean squared misfit at the noise level
        z = initial_noise(prior, (b, prior.channels, prior.image_size, prior.image_size), generators)
        nfe = 0

        def unet(v: Tensor, t: int) -> Tensor:
            nonlocal nfe
            nfe += 1
            with run.net:
                return prior(v, torch.full((b,), t, device=v.device, dtype=torch.long))

        for i, t in enumerate(timesteps):
            with torch.enable_grad() if guidance is not None else torch.no_grad():
                z_in = z.detach().requires_grad_(guidance is not None)
                out = scheduler.step(unet(z_in, t), t, z_in, generators)
                z0, z_prev = out.pred_original_sample, out.prev_sample
                if latent_guidance is not None:
                    loss = latent_guidance.loss(z0, step=i, total_steps=n)
                    with run.net:
                        (grad,) = torch.autograd.grad(loss.sum(), z_in)
                    z_prev = z_prev - self.zeta * scheduler.alpha_prod(t) * grad
            z = z_prev.detach()
            stage = None if guidance is None else self.stage(n - 1 - i, n)
            if stage is not None:
                self.resamples += 1
                with torch.no_grad():  # time travel: the estimate a few unconditional steps ahead
                    ahead, z_ahead = z, z
                    for k in range(i + 1, min(i + 1 + self.time_travel_steps, n)):
                        tt = scheduler.step(unet(ahead, timesteps[k]), timesteps[k], ahead, generators)
                        ahead, z_ahead = tt.prev_sample, tt.pred_original_sample
                if stage == "pixel":
                    z_fit = self.pixel_fit(prior, guidance, z_ahead, threshold)
                else:
                    z_fit = self.latent_fit(prior, latent_guidance, z_ahead, threshold, i, n)
                a_prev, a_t = scheduler.alpha_prod_prev(t), scheduler.alpha_prod(t)
                variance = self.gamma * (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
                z = stochastic_resample(z_fit, z, a_prev, variance, generators)
            z = run.drop_failed(z, i, self.divergence_threshold)
            if on_step is not None:
                on_step(i, n, z0.detach())
        if latent_guidance is not None:
            z = self.latent_fit(prior, latent_guidance, z, threshold, n - 1, n)
            z = run.drop_failed(z, n, self.divergence_threshold)
        with torch.no_grad():
            x = prior.decode(z)
        return run.output(x, nfe)
