"""Joint (a, u) samples for the four PDE problems, in physical units ``[N, 2, n, n]`` float64."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from equireg_lit.pde.elliptic import solve_darcy, solve_helmholtz, solve_poisson
from equireg_lit.pde.grf import sample_grf
from equireg_lit.pde.navier_stokes import VorticitySolver, default_forcing

Problem = Literal["darcy", "poisson", "helmholtz", "navier_stokes"]
SOLVER_VERSION = 1  # bump when a solver's numerics change: cached datasets are then rebuilt
DARCY_VALUES = (3.0, 12.0)  # coefficient where the GRF is below / above zero
PARAMS = {
    "darcy": {"alpha": 2.0, "tau": 3.0, "values": DARCY_VALUES, "f": 1.0},
    "poisson": {"alpha": 2.0, "tau": 3.0},
    "helmholtz": {"alpha": 2.0, "tau": 3.0, "k": 1.0},
    "navier_stokes": {"alpha": 2.0, "tau": 3.0, "nu": 1e-3, "t_final": 1.0, "dt": 5e-3, "forcing": "0.1(sin(2pi(x+y))+cos(2pi(x+y)))"},
}


def generate(problem: Problem, num: int, n: int, generator: torch.Generator) -> Tensor:
    """``num`` pairs (a, u): Darcy (a thresholded GRF, u the solution of -div(a grad u) = 1),
    Poisson (lap u = a), Helmholtz (lap u + k^2 u = a), Navier-Stokes (a = initial vorticity,
    u = vorticity at T = 1)."""
    if problem not in PARAMS:
        raise ValueError(f"unknown problem {problem!r}; valid: {', '.join(PARAMS)}")
    p = PARAMS[problem]
    g = sample_grf(num, n, p["alpha"], p["tau"], generator=generator)
    if problem == "darcy":
        a = torch.where(g > 0, p["values"][1], p["values"][0]).to(torch.float64)
        u = solve_u(problem, a)
    elif problem in ("poisson", "helmholtz"):
        a, u = g, solve_u(problem, g)
    else:
        a, u = g, solve_u(problem, g)
    return torch.stack([a, u], dim=1)


def solve_u(problem: Problem, a: Tensor) -> Tensor:
    """The solution u for coefficients / sources / initial vorticities ``a`` (``[N, n, n]``)."""
    p = PARAMS[problem]
    if problem == "darcy":
        return solve_darcy(a, p["f"])
    if problem == "poisson":
        return solve_poisson(a)
    if problem == "helmholtz":
        return solve_helmholtz(a, p["k"])
    if problem == "navier_stokes":
        n = a.shape[-1]
        return VorticitySolver(n, nu=p["nu"], forcing=default_forcing(n), dt=p["dt"]).solve(a, p["t_final"])
    raise ValueError(f"unknown problem {problem!r}; valid: {', '.join(PARAMS)}")


def relative_l2(pred: Tensor, true: Tensor) -> Tensor:
    """Per-sample, per-channel ``||pred - true||_2 / ||true||_2`` for ``[B, C, H, W]``: ``[B, C]``."""
    return (pred - true).flatten(2).norm(dim=-1) / true.flatten(2).norm(dim=-1).clamp_min(1e-12)


def darcy_binarize(a: Tensor) -> Tensor:
    """A reconstructed Darcy coefficient snapped to its two values at their midpoint."""
    lo, hi = DARCY_VALUES
    return torch.where(a > 0.5 * (lo + hi), hi, lo).to(a.dtype)


def darcy_error_rate(a_pred: Tensor, a_true: Tensor) -> Tensor:
    """Fraction of pixels whose binary Darcy coefficient is wrong after thresholding at the midpoint."""
    return (darcy_binarize(a_pred) != darcy_binarize(a_true)).flatten(1).float().mean(dim=1)


def field_metrics(recon: Tensor, truth: Tensor, mean: Tensor, std: Tensor, problem: str) -> dict[str, float]:
    """Relative L2 of each channel of one normalized ``[2, n, n]`` pair in physical units, the Darcy
    coefficient's error rate, and the relative L2 of u solved from the
    reconstructed a (Navier-Stokes: the vorticity at T = 1 integrated from the reconstructed initial
    one); ``mean`` / ``std`` are the per-channel normalization."""
    m, s = torch.as_tensor(mean).view(1, -1, 1, 1).to(recon), torch.as_tensor(std).view(1, -1, 1, 1).to(recon)
    p, t = recon[None] * s + m, truth[None] * s + m
    rel = relative_l2(p, t)[0]
    out = {"rel_l2_a": float(rel[0]), "rel_l2_u": float(rel[1])}
    if problem == "darcy":
        out["error_rate_a"] = float(darcy_error_rate(p[:, 0], t[:, 0])[0])
    if problem in PARAMS:
        # u solved from the reconstructed a (Darcy's snapped to its two values): tells the error
        # of the recovered coefficient apart from the joint prior's (a, u) coupling.
        a_hat = darcy_binarize(p[:, 0]) if problem == "darcy" else p[:, 0]
        u = solve_u(problem, a_hat.double())
        out["rel_l2_u_solved"] = float(relative_l2(u[:, None], t[:, 1:].double())[0, 0])
    return out


Layout = Literal["sequential", "nested"]


def pde_provenance(problem: Problem, resolution: int, sizes: dict[str, int], seed: int,
                   layout: Layout = "sequential") -> dict:
    """What decides a cached PDE data set (sequential caches keep their pre-layout key)."""
    prov = {"problem": problem, "resolution": resolution, "sizes": dict(sizes), "seed": seed,
            "params": PARAMS[problem], "solver_version": SOLVER_VERSION}
    return prov | ({"layout": "nested"} if layout == "nested" else {})


def generate_splits(problem: Problem, resolution: int, sizes: dict[str, int], seed: int,
                    layout: Layout = "sequential", progress: bool = True) -> dict[str, Tensor]:
    """The splits (physical units, float32) and the train split's per-channel ``mean`` / ``std``.

    ``sequential`` draws train, val, test in that order from one stream; ``nested`` draws test,
    then val, then train, so test and validation do not depend on the training-set size and a
    smaller training set is a prefix of a larger one."""
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(seed)
    total = sum(sizes.values())
    chunks, chunk, done = [], 50, 0
    for _ in tqdm(range(0, total, chunk), desc=f"generating {problem} {resolution}x{resolution}", disable=not progress):
        chunks.append(generate(problem, min(chunk, total - done), resolution, g))
        done += chunks[-1].shape[0]
    fields = torch.cat(chunks).float()
    out, start = {}, 0
    for split in (["train", "val", "test"] if layout == "sequential" else ["test", "val", "train"]):
        out[split] = fields[start : start + sizes[split]].contiguous()
        start += sizes[split]
    out["mean"] = out["train"].mean(dim=(0, 2, 3))
    out["std"] = out["train"].std(dim=(0, 2, 3))
    return out


def load_pde_splits(problem: Problem, resolution: int = 64, sizes: dict[str, int] | None = None, seed: int = 0,
                    layout: Layout = "sequential", cache_dir: str = "data_cache/pde") -> dict[str, Tensor]:
    """``generate_splits`` cached under ``cache_dir`` by provenance (default sizes: 1,000 / 100 / 100)."""
    from equireg_lit.utils.io import cached_tensors

    sizes = sizes or {"train": 1000, "val": 100, "test": 100}
    return cached_tensors(cache_dir, f"{problem}_{resolution}", pde_provenance(problem, resolution, sizes, seed, layout),
                          lambda: generate_splits(problem, resolution, sizes, seed, layout))
