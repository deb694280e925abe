"""Validation of the PDE solvers: convergence orders on manufactured solutions, the Taylor-Green
vortex, and inviscid conservation. Writes benchmarks/results/pde_validation.{json,md}.

    python -m benchmarks.pde_validation
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from equireg_lit.pde import VorticitySolver, sample_grf, solve_darcy, solve_helmholtz

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (17, 33, 65, 129)


def grid(n: int):
    t = torch.linspace(0, 1, n, dtype=torch.float64)
    y, x = torch.meshgrid(t, t, indexing="ij")
    return x, y


def orders(e: list[float]) -> list[float]:
    return [math.log2(e[i] / e[i + 1]) for i in range(len(e) - 1)]


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="", help="subfolder of benchmarks/results (quick suite: quick)")
    out_dir = RESULTS / p.parse_args().out
    res: dict = {}
    for name, k in (("poisson", 0.0), ("helmholtz_k1", 1.0)):
        errs = []
        for n in SIZES:
            x, y = grid(n)
            u = torch.sin(math.pi * x) * torch.sin(2 * math.pi * y)
            errs.append((solve_helmholtz(((k**2 - 5 * math.pi**2) * u)[None], k)[0] - u).abs().max().item())
        res[name] = {"max_errors": errs, "orders": orders(errs)}
    errs = []
    for n in SIZES:
        x, y = grid(n)
        u = torch.sin(math.pi * x) * torch.sin(math.pi * y)
        a, p = 2 + x * y, math.pi
        f = -(y * p * torch.cos(p * x) * torch.sin(p * y) + x * p * torch.sin(p * x) * torch.cos(p * y) - 2 * a * p**2 * u)
        errs.append((solve_darcy(a[None], f[None])[0] - u).abs().max().item())
    res["darcy_variable_a"] = {"max_errors": errs, "orders": orders(errs)}
    n = 64
    t = torch.arange(n, dtype=torch.float64) / n
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    w0 = torch.sin(2 * math.pi * xx) * torch.sin(2 * math.pi * yy)
    w = VorticitySolver(n, nu=1e-3, dt=5e-3).solve(w0[None], 1.0)[0]
    res["taylor_green"] = {"n": n, "nu": 1e-3, "dt": 5e-3, "T": 1.0,
                           "max_error_vs_analytic": (w - w0 * math.exp(-8 * math.pi**2 * 1e-3)).abs().max().item()}
    s = VorticitySolver(n, nu=0.0, dt=5e-3)
    g = torch.fft.ifft2(torch.fft.fft2(sample_grf(4, n, generator=torch.Generator().manual_seed(0))) * s.dealias).real
    w1 = s.solve(g, 1.0)
    res["inviscid_conservation"] = {
        "n": n, "dt": 5e-3, "T": 1.0,
        "max_rel_energy_change": ((s.energy(w1) - s.energy(g)) / s.energy(g)).abs().max().item(),
        "max_rel_enstrophy_change": ((s.enstrophy(w1) - s.enstrophy(g)) / s.enstrophy(g)).abs().max().item(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "pde_validation.json").write_text(json.dumps(res, indent=2) + "\n")
    md = ["| solver | max error at n = 17 / 33 / 65 / 129 | observed order |", "|---|---|---|"]
    for k in ("poisson", "helmholtz_k1", "darcy_variable_a"):
        md.append(f"| {k} | {' / '.join(f'{e:.2e}' for e in res[k]['max_errors'])} | "
                  f"{' , '.join(f'{o:.3f}' for o in res[k]['orders'])} |")
    tg, cons = res["taylor_green"], res["inviscid_conservation"]
    md.append("")
    md.append(f"Taylor-Green vortex (64x64, nu = 1e-3, dt = 5e-3, T = 1): max error vs analytic decay {tg['max_error_vs_analytic']:.1e}.  ")
    md.append(f"Inviscid, unforced (64x64, dt = 5e-3, T = 1, 4 GRF initial fields): relative energy change "
              f"{cons['max_rel_energy_change']:.1e}, enstrophy change {cons['max_rel_enstrophy_change']:.1e}.")
    (out_dir / "pde_validation.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
