"""Every seeding formula of the project and its per-sample noise, in one place.

Each sample's randomness comes from its own generators, derived from ``(seed, dataset index,
stream)``; so a sample's result does not depend on its batch, the order of batches or the number
of processes.
"""

from __future__ import annotations

import torch

# Independent streams per sample.
STREAM_MEASUREMENT, STREAM_SOLVER, STREAM_REGULARIZER = 0, 1, 2


def sample_generator(seed: int, index: int, stream: int) -> torch.Generator:
    """Generator for one sample (``index``) and one purpose (``stream``)."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + index) * 8 + stream) % (2**63 - 1))


def sample_generators(seed: int, indices: list[int], stream: int) -> list[torch.Generator]:
    """One generator per sample of a batch."""
    return [sample_generator(seed, i, stream) for i in indices]


def draw_generators(seed: int, start: int, n: int) -> list[torch.Generator]:
    """Generators of unconditional prior draws ``start .. start + n - 1`` (prior samples, probe
    sets, the prior-quality study); a draw does not depend on its batch."""
    return [torch.Generator().manual_seed(seed * 1_000_003 + start + i) for i in range(n)]


def trajectory_generators(seed: int, start: int, n: int) -> list[torch.Generator]:
    """Generators of the measurement and solver noise of the DPS trajectories that build probe
    sets (a formula of its own, kept so cached sets stay valid)."""
    return [torch.Generator().manual_seed(seed * 7919 + start + i) for i in range(n)]


def training_batch_generator(seed: int, epoch: int, batch_idx: int, rank: int) -> torch.Generator:
    """Timesteps, noise and augmentations of one training batch on one process: a function of the
    batch's place in training alone (a resumed fit draws what the uninterrupted run drew) and
    different on every process (DDP ranks do not repeat each other's noise, as they would from
    one global seed)."""
    return torch.Generator().manual_seed((((seed * 1_000_003 + epoch) * 1_000_003 + batch_idx) * 4096 + rank) % (2**63 - 1))


def validation_batch_generator(seed: int, batch_idx: int) -> torch.Generator:
    """Fixed noise of one validation batch, so validation losses are comparable across epochs."""
    return torch.Generator().manual_seed(seed * 100003 + batch_idx)


def per_sample_randn(shape: tuple[int, ...], generators: list[torch.Generator], like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise drawn sample by sample on the CPU (``generators[i]`` for sample ``i``),
    so a sample's noise ignores its batch and device; returned with ``like``'s dtype and device."""
    if len(generators) != shape[0]:
        raise ValueError(f"need one generator per sample: {len(generators)} for a batch of {shape[0]}")
    out = torch.stack([torch.randn(shape[1:], generator=g, dtype=like.dtype) for g in generators])
    return out.to(like.device)
