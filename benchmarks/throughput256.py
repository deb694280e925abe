"""DPS at 256x256 with the FFHQ-size guided-diffusion UNet: step time against the network's own
forward+backward, in fp32 and bf16 (what Lightning's ``precision: bf16-mixed`` does: autocast),
optionally with ``torch.compile``. Random weights (timing does not depend on them).

    python -m benchmarks.throughput256 [--batches 1 4 16] [--steps 3] [--repeats 3] [--compile] [--device cuda]

Per batch size and precision, interleaved repeats of (a) ``steps`` DPS steps on box inpainting and
(b) the same number of bare network forward+backward passes; the ratio (a) / (b) is the
sampler's overhead over the work it cannot avoid (goal: at most 1.1); so is, inside one DPS run,
its total time over the time it spends in the network (immune to a machine whose load drifts
between runs). Medians over repeats.
Writes benchmarks/results/<out>/throughput256.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks.stats import machine
from equireg_lit.diffusion import GuidedDiffusionPrior
from equireg_lit.physics import BoxInpainting
from equireg_lit.solvers import DPS, Guidance

RESULTS = Path(__file__).resolve().parent / "results"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def network_passes(prior, x: torch.Tensor, steps: int) -> None:
    """``steps`` forward+backward passes of the bare network (what a DPS step cannot avoid)."""
    t = torch.full((x.shape[0],), 500, device=x.device, dtype=torch.long)
    for _ in range(steps):
        x_in = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(prior(x_in, t).float().sum(), x_in)


def dps_steps(prior, op, y: torch.Tensor, steps: int):
    """``steps`` DPS steps; returns the sampler's output (its own network time and total time)."""
    gens = [torch.Generator().manual_seed(i) for i in range(y.shape[0])]
    return DPS(num_steps=steps, zeta=1.0).sample(prior, (y.shape[0], 3, 256, 256), gens, Guidance(op, y))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="*", default=[1, 4, 16])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precisions", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="", help="subfolder of benchmarks/results")
    a = p.parse_args()
    dev = torch.device(a.device)
    prior = GuidedDiffusionPrior(random_init=True).eval().requires_grad_(False).to(dev)
    if a.compile:
        prior.net = torch.compile(prior.net)
    op = BoxInpainting(img_size=(3, 256, 256), box_size=128).to(dev)
    rows = []
    for batch in a.batches:
        truth = torch.rand(batch, 3, 256, 256, generator=torch.Generator().manual_seed(0)).to(dev) * 2 - 1
        y = op.A(truth)
        for precision in a.precisions:
            times = {"dps": [], "network": []}
            within = []  # total / network time inside the same DPS run: immune to drifting machine load
            with autocast(dev, precision):
                network_passes(prior, truth, 1)  # warm-up (and compilation)
                dps_steps(prior, op, y, 1)
                for _ in range(a.repeats):  # interleaved, so machine noise hits both alike
                    for name, run in (("dps", lambda: dps_steps(prior, op, y, a.steps)),
                                      ("network", lambda: network_passes(prior, truth, a.steps))):
                        sync(dev)
                        t0 = time.perf_counter()
                        out = run()
                        sync(dev)
                        times[name].append((time.perf_counter() - t0) / a.steps)
                        if out is not None:
                            within.append(out.total_seconds / out.network_seconds)
            dps, net = statistics.median(times["dps"]), statistics.median(times["network"])
            rows.append({"batch": batch, "precision": precision, "compiled": a.compile,
                         "dps_ms_per_step_per_sample": 1e3 * dps / batch,
                         "network_ms_per_step_per_sample": 1e3 * net / batch, "ratio": dps / net,
                         "ratio_within_run": statistics.median(within)})
            print(json.dumps(rows[-1]), flush=True)
    out = RESULTS / a.out
    out.mkdir(parents=True, exist_ok=True)
    where = machine(dev)
    report = {"rows": rows, "machine": where, "steps": a.steps, "repeats": a.repeats,
              "command": "python -m benchmarks.throughput256 " + " ".join(
                  f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(a).items()
                  if k not in ("compile", "out")) + (" --compile" if a.compile else "")}
    (out / "throughput256.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| batch | precision | DPS ms / step / sample | bare network fwd+bwd ms / step / sample | "
             "DPS / bare network | DPS time / its own network time |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['precision']}{' compiled' if r['compiled'] else ''} | "
              f"{r['dps_ms_per_step_per_sample']:.0f} | {r['network_ms_per_step_per_sample']:.0f} | {r['ratio']:.3f} | "
              f"{r['ratio_within_run']:.3f} |" for r in rows]
    lines.append(f"\nFFHQ-size guided-diffusion UNet (93.6 M parameters, random weights), 256x256 box inpainting, "
                 f"{a.steps} steps, median of {a.repeats}; machine: {where}.")
    (out / "throughput256.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
