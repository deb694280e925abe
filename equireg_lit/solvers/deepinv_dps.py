"""deepinv's own DPS (``deepinv.sampling.DPS``) as a solver of this library, for peer studies.

It runs deepinv's sampler unchanged (its VP SDE, DDPM solver, guidance ``weight``, final denoising
step) on the prior through :class:`~equireg_lit.diffusion.DeepinvDenoiser`, so a study can tune
its ``weight`` on validation exactly as ours tunes zeta and compare both on the same measurements.

Differences from this library's solvers, stated rather than hidden: deepinv draws a batch's noise
from one generator, so a sample's result depends on the batch it is in (seeded from the batch's
first sample generator: fixed batches make runs reproducible for a given ``batch_size``); it has
no EquiReg or residual term (a guidance with either is refused); failures are detected only at
the end (non-finite samples are zeroed and reported at the last step).
"""

from __future__ import annotations

from typing import Literal

import torch

from equireg_lit.diffusion.priors import DiffusionPrior
from equireg_lit.errors import check_range
from equireg_lit.solvers.base import Guidance, SamplerOutput, SamplingRun, Solver, StepCallback


class DeepinvDPS(Solver):
    """deepinv's ``DPS`` sampler on this library's prior (peer comparisons).

    Args:
        num_steps: Sampling steps (deepinv's ``num_steps``).
        weight: deepinv's guidance weight (its default 1.0 is set for 256x256 images; tune it).
        dtype: Arithmetic of deepinv's SDE (its default is float64).
    """

    def __init__(self, num_steps: int = 1000, weight: float = 1.0, dtype: Literal["float32", "float64"] = "float64"):
        check_range("num_steps", num_steps, 1)
        check_range("weight", weight, 0.0)
        self.num_steps, self.weight, self.dtype = int(num_steps), float(weight), dtype

    def sample(self, prior: DiffusionPrior, shape: tuple[int, ...], generators: list[torch.Generator],
               guidance: Guidance | None = None, on_step: StepCallback | None = None) -> SamplerOutput:
        import deepinv

        from equireg_lit.diffusion import DeepinvDenoiser

        if guidance is None or guidance.regularizer is not None or guidance.residual is not None:
            raise ValueError("DeepinvDPS samples posteriors with deepinv's own data term only: "
                             "set regularizer and pde_residual to null")
        device = next((p.device for p in prior.parameters()), torch.device("cpu"))
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generators[0]))
        sampler = deepinv.sampling.DPS(DeepinvDenoiser(prior), num_steps=self.num_steps, weight=self.weight,
                                       dtype=getattr(torch, self.dtype), device=device,
                                       rng=torch.Generator(device).manual_seed(seed))
        run = SamplingRun()
        x = sampler(guidance.y, guidance.physics, seed=seed).to(torch.float32).detach()
        x = run.drop_failed(x, self.num_steps - 1)
        if on_step is not None:
            on_step(self.num_steps - 1, self.num_steps, x)
        # deepinv's DPS evaluates the network once per step plus its final denoising step.
        return run.output(x, self.num_steps + 1)
