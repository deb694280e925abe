"""Our DiffPIR against ``deepinv.sampling.DiffPIR`` on the same network, operator, measurements
and settings (MNIST 32x32 test digits; both at deepinv's defaults: 100 steps, lambda 7, zeta 0.1).

    python -m benchmarks.diffpir_peer --task gaussian_blur --n 16

deepinv's DiffPIR works on [0, 1] images with a denoiser ``D(x, sigma)`` of that range; the shipped
prior serves it through ``DeepinvDenoiser`` rescaled to [0, 1], and it sees the same measurements
rescaled (``(y + A 1) / 2``, noise 0.025 on [0, 1]). What differs by design (docs/solvers.md):
its timesteps are spaced quadratically, it starts from ``A^T y`` plus noise, draws from the global
RNG, skips the data step at the last iteration; ours spaces timesteps evenly, starts from noise
drawn per sample and ends with the data step. And its ``rho_t`` is half the paper's at the same
``lambda`` (it mixes the [0, 1] noise level with [-1, 1] levels sigma_t, and its prox weight is
``1 / (2 rho)``), so a third row runs ours at ``lambda / 2``: the same data weight as deepinv's.
Writes benchmarks/results/diffpir_peer_<task>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.stats import machine, mean_se, paired
from benchmarks.study import task_operator
from equireg_lit.callbacks.prediction_writer import image_metrics
from equireg_lit.data.mnist import mnist32, split_indices
from equireg_lit.diffusion import DeepinvDenoiser, DiffusersUNetPrior
from equireg_lit.physics import simulate
from equireg_lit.rng import STREAM_MEASUREMENT, STREAM_SOLVER, sample_generator
from equireg_lit.solvers import DiffPIR, Guidance

RESULTS = Path(__file__).resolve().parent / "results"


class UnitRange(torch.nn.Module):
    """``D`` on [0, 1] images from a [-1, 1] denoiser: ``(D(2x - 1, 2 sigma) + 1) / 2``."""

    def __init__(self, denoiser: torch.nn.Module):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x, sigma, *args, **kwargs):
        return (self.denoiser(2 * x - 1, 2 * torch.as_tensor(sigma)) + 1) / 2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="gaussian_blur")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lambda_", type=float, default=7.0)
    p.add_argument("--zeta", type=float, default=0.1)
    p.add_argument("--out", default=None, help="output stem (default benchmarks/results/diffpir_peer_<task>)")
    args = p.parse_args()
    import deepinv

    torch.manual_seed(0)
    prior = DiffusersUNetPrior(weights="mnist32").eval().requires_grad_(False)
    images, _ = mnist32()
    x = images[split_indices("test")[: args.n]]
    op = task_operator(args.task)
    y = simulate(op, x, [sample_generator(0, i, STREAM_MEASUREMENT) for i in range(args.n)])
    def ours_at(lam: float) -> torch.Tensor:
        return DiffPIR(num_steps=args.steps, lambda_=lam, stochasticity=args.zeta).sample(
            prior, tuple(x.shape), [sample_generator(0, i, STREAM_SOLVER) for i in range(args.n)], Guidance(op, y)).x

    t0 = time.perf_counter()
    ours = ours_at(args.lambda_)
    t_ours = time.perf_counter() - t0
    ours_half = ours_at(args.lambda_ / 2)
    op01 = task_operator(args.task)
    op01.noise_model.sigma.fill_(op.noise_sigma / 2)  # the same noise, on [0, 1]
    y01 = (y + op.A(torch.ones_like(x))) / 2
    peer = deepinv.sampling.DiffPIR(UnitRange(DeepinvDenoiser(prior)), deepinv.optim.data_fidelity.L2(),
                                    sigma=op.noise_sigma / 2, max_iter=args.steps, zeta=args.zeta, lambda_=args.lambda_)
    t0 = time.perf_counter()
    with torch.no_grad():
        theirs = peer(y01, op01, seed=1) * 2 - 1
    t_theirs = time.perf_counter() - t0
    rows = {name: dict(enumerate(image_metrics(r, t) for r, t in zip(v, x, strict=True)))
            for name, v in {"ours": ours, "ours_half_lambda": ours_half, "deepinv": theirs}.items()}
    res = {"task": args.task, "n": args.n, "steps": args.steps, "lambda_": args.lambda_, "zeta": args.zeta,
           "psnr": {k: mean_se([r["psnr"] for r in v.values()]) for k, v in rows.items()},
           "delta_psnr_deepinv_minus_ours": paired(rows["ours"], rows["deepinv"], "psnr"),
           "delta_psnr_deepinv_minus_ours_half_lambda": paired(rows["ours_half_lambda"], rows["deepinv"], "psnr"),
           "time_deepinv_over_ours": t_theirs / t_ours, "deepinv_version": deepinv.__version__,
           "machine": machine(), "command": f"python -m benchmarks.diffpir_peer --task {args.task} --n {args.n}"}
    out = Path(args.out) if args.out else RESULTS / f"diffpir_peer_{args.task}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    d, d2 = res["delta_psnr_deepinv_minus_ours"], res["delta_psnr_deepinv_minus_ours_half_lambda"]
    ps = {k: f"{m:.2f} ± {se:.2f}" for k, (m, se) in res["psnr"].items()}
    md = [f"| method ({args.task}, {args.steps} steps, zeta {args.zeta}, n = {args.n}) | PSNR | "
          "ΔPSNR deepinv − this row [95% CI] | time / ours |", "|---|---|---|---|",
          f"| equireg-lit DiffPIR, lambda {args.lambda_} | {ps['ours']} | "
          f"{d['mean_diff']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] | 1.00 |",
          f"| equireg-lit DiffPIR, lambda {args.lambda_ / 2} (deepinv's data weight) | {ps['ours_half_lambda']} | "
          f"{d2['mean_diff']:+.2f} [{d2['ci95'][0]:+.2f}, {d2['ci95'][1]:+.2f}] | — |",
          f"| deepinv DiffPIR, lambda {args.lambda_} | {ps['deepinv']} | — | {res['time_deepinv_over_ours']:.2f} |", "",
          f"deepinv {res['deepinv_version']}; machine: {res['machine']}. Command: `{res['command']}`"]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
