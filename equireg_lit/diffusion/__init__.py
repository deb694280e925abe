"""Noise schedules and diffusion priors (epsilon networks)."""

from equireg_lit.diffusion.priors import (
    DiffusersUNetPrior,
    DiffusionPrior,
    GaussianPrior,
    GuidedDiffusionPrior,
)
from equireg_lit.diffusion.deepinv_adapter import DeepinvDenoiser
from equireg_lit.diffusion.latent import LatentDiffusionPrior, save_latent_pipeline
from equireg_lit.diffusion.schedule import NoiseSchedule
from equireg_lit.diffusion.scheduler import DDIMScheduler, StepOutput

__all__ = ["NoiseSchedule", "DDIMScheduler", "StepOutput", "DiffusionPrior", "GaussianPrior", "DiffusersUNetPrior", "GuidedDiffusionPrior", "DeepinvDenoiser",
           "LatentDiffusionPrior", "save_latent_pipeline"]
