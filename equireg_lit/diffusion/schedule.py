"""VP / DDPM noise schedules and the conversions between epsilon, x0 and the score."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

ScheduleName = Literal["linear", "scaled_linear", "cosine"]


class NoiseSchedule:
    """Discrete variance-preserving schedule ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``.

    Args:
        name: ``linear`` (betas from ``beta_start`` to ``beta_end``, the schedule of the standard
            DPS / guided-diffusion checkpoints), ``scaled_linear`` (square roots linear, diffusers'
            name; latent diffusion models) or ``cosine`` (Nichol & Dhariwal 2021).
        num_train_timesteps: T, the number of discrete timesteps (1000 for the standard checkpoints).
        beta_start: First beta of the linear schedule.
        beta_end: Last beta of the linear schedule.
    """

    def __init__(
        self,
        name: ScheduleName = "linear",
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
    ):
        if name == "linear":
            betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        elif name == "scaled_linear":
            betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
        elif name == "cosine":
            s = 0.008
            steps = torch.arange(num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
            f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        else:
            raise ValueError(f"unknown noise schedule {name!r}; valid: linear, scaled_linear, cosine")
        self.name = name
        self.num_train_timesteps = num_train_timesteps
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)

    def abar(self, t: Tensor, like: Tensor) -> Tensor:
        """``abar_t`` gathered for integer timesteps ``t`` ([B]), broadcast to ``like``'s shape."""
        a = self.alphas_cumprod.to(like.device)[t.long().to(like.device)].to(like.dtype)
        return a.view(-1, *([1] * (like.ndim - 1)))

    def add_noise(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """Forward process sample ``x_t``."""
        a = self.abar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def eps_to_x0(self, x_t: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """Tweedie clean estimate ``x0_hat = (x_t - sqrt(1 - abar) eps) / sqrt(abar)``."""
        a = self.abar(t, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def x0_to_eps(self, x_t: Tensor, x0: Tensor, t: Tensor) -> Tensor:
        """Inverse of :meth:`eps_to_x0`."""
        a = self.abar(t, x_t)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    def eps_to_score(self, eps: Tensor, t: Tensor) -> Tensor:
        """Score ``grad log p_t(x_t) = -eps / sqrt(1 - abar_t)``."""
        return -eps / (1 - self.abar(t, eps)).sqrt()

    def score_to_eps(self, score: Tensor, t: Tensor) -> Tensor:
        """Inverse of :meth:`eps_to_score`."""
        return -score * (1 - self.abar(t, score)).sqrt()

    def timesteps(self, num_steps: int) -> list[int]:
        """Descending, evenly spaced subsequence of ``num_steps`` timesteps ending at 0.

        ``num_steps == T`` gives every timestep (T-1, ..., 0), i.e. full DDPM sampling.
        """
        T = self.num_train_timesteps
        if not 1 <= num_steps <= T:
            raise ValueError(f"num_steps must be in [1, {T}], got {num_steps}")
        ts = torch.linspace(T - 1, 0, num_steps, dtype=torch.float64).round().long().tolist()
        if len(set(ts)) != num_steps:  # pragma: no cover - linspace over integers never repeats here
            raise RuntimeError("timestep subsequence has repeats")
        return ts
