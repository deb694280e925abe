"""Are the PDE priors' unconditional samples physical, and is the sampler to blame when not?

    python -m benchmarks.pde_prior_quality [--problems darcy helmholtz] [--steps 50 200 1000] [--num-samples 16]

For each shipped joint (a, u) prior: unconditional DDPM samples (eta 1) at several step counts;
their per-channel spread (standard deviation over samples and pixels, normalized units) against
the data's (1 by construction) and against what a perfect network would give at that step count
(the exact noise predictor of a unit Gaussian: coarse steps under-disperse by themselves); and
the prior's physics figure, the relative L2 of u against u solved from the sample's own a
(Darcy's a snapped to its two values), against the data's own 0. Writes
benchmarks/results/<out>/pde_prior_quality.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.stats import machine
from equireg_lit.datamodules import PDEDataModule
from equireg_lit.diffusion import DiffusersUNetPrior, GaussianPrior
from equireg_lit.pde.data import darcy_binarize, relative_l2, solve_u
from equireg_lit.rng import draw_generators
from equireg_lit.solvers import DPS

RESULTS = Path(__file__).resolve().parent / "results"


def perfect_network_spread(steps: int, n: int = 256) -> float:
    """The spread DDPM (eta 1) gives a unit Gaussian with its exact noise predictor at ``steps``."""
    x = DPS(num_steps=steps, eta=1.0, clip_x0=False).sample(
        GaussianPrior(0.0, 1.0, 1, 8), (n, 1, 8, 8), draw_generators(7, 0, n)).x
    return x.std().item()


def physics_error(problem: str, fields: torch.Tensor, dm: PDEDataModule) -> torch.Tensor:
    """Per-sample ``||u - solve(a)|| / ||solve(a)||`` in physical units."""
    phys = dm.denormalize(fields.double())
    a = darcy_binarize(phys[:, 0]) if problem == "darcy" else phys[:, 0]
    u_solved = solve_u(problem, a)
    return relative_l2(phys[:, 1:], u_solved[:, None])[:, 0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problems", nargs="*", default=["darcy", "helmholtz"])
    p.add_argument("--steps", type=int, nargs="*", default=[50, 200, 1000])
    p.add_argument("--num-samples", type=int, default=16)
    p.add_argument("--out", default="")
    a = p.parse_args()
    rows = []
    for problem in a.problems:
        dm = PDEDataModule(problem=problem, resolution=64)
        dm.setup()
        data = dm.splits["test"].images[: a.num_samples]
        rows.append({"problem": problem, "source": "test data", "steps": None,
                     "spread": data.std(dim=(0, 2, 3)).tolist(), "perfect_network_spread": None,
                     "physics_rel_l2_median": physics_error(problem, data, dm).median().item(), "seconds": 0.0})
        prior = DiffusersUNetPrior(weights=f"{problem}64").eval().requires_grad_(False)
        for steps in a.steps:
            t0 = time.perf_counter()
            x = DPS(num_steps=steps, eta=1.0, clip_x0=False).sample(
                prior, (a.num_samples, 2, 64, 64), draw_generators(0, 0, a.num_samples)).x
            rows.append({"problem": problem, "source": "prior samples", "steps": steps,
                         "spread": x.std(dim=(0, 2, 3)).tolist(), "perfect_network_spread": perfect_network_spread(steps),
                         "physics_rel_l2_median": physics_error(problem, x, dm).median().item(),
                         "seconds": time.perf_counter() - t0})
            print(json.dumps(rows[-1]), flush=True)
    out = RESULTS / a.out
    out.mkdir(parents=True, exist_ok=True)
    where = machine()
    (out / "pde_prior_quality.json").write_text(json.dumps({"rows": rows, "machine": where}, indent=2) + "\n")
    lines = ["| problem | samples | steps (DDPM, eta 1) | spread of a | spread of u | a perfect network's spread | "
             "u vs solve(a), median rel. L2 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        perfect = "—" if r["perfect_network_spread"] is None else f"{r['perfect_network_spread']:.3f}"
        lines.append(f"| {r['problem']} | {r['source']} | {r['steps'] or '—'} | {r['spread'][0]:.3f} | "
                     f"{r['spread'][1]:.3f} | {perfect} | {100 * r['physics_rel_l2_median']:.1f} % |")
    lines.append(f"\n{a.num_samples} samples each (normalized units: the data's spread is 1 by construction); "
                 f"machine: {where}.")
    (out / "pde_prior_quality.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
