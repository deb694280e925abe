"""Cost of EquiReg, measured in one run on one machine (ratios, medians over repeats).

    python -m benchmarks.cost [--repeats 3] [--steps 50] [--batch 16] [--batches 1 4 16 64] [--device cuda]
    python -m benchmarks.cost --samplers [--repeats 3] [--batch 16] [--device cuda]

DPS on box inpainting of MNIST test digits with the shipped prior, alone and with EquiReg using
the prior's denoiser or the shipped probe as f; runs are interleaved so machine noise hits all
methods alike. Also the pure network cost: the same number of forward+backward passes of the
prior alone, giving solver time / network time. Then throughput at several batch sizes: seconds
per step per sample, split into network forward+backward and everything else.
Writes benchmarks/results/<out>/cost.{json,md} and throughput.{json,md}.

``--samplers`` measures instead every sampler at its studies' smallest budget, alone and with
EquiReg (the prior's denoiser as f, every step or level, the shipped placement), interleaved:
seconds per sample, time over the run's own network time (forward passes, and backward passes
where the sampler differentiates the network), and EquiReg / the sampler. Writes sampler_cost.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from benchmarks.stats import machine
from equireg_lit.data.mnist import mnist32, split_indices
from equireg_lit.diffusion import DiffusersUNetPrior
from equireg_lit.rng import STREAM_MEASUREMENT, STREAM_REGULARIZER, STREAM_SOLVER, sample_generator
from equireg_lit.physics import BoxInpainting, simulate
from equireg_lit.probes import Pretrained, SmallCNN
from equireg_lit.regularizer import EquiReg, PriorDenoiser
from equireg_lit.solvers import DAPS, DPS, SITCOM, DiffPIR, Guidance, Solver

RESULTS = Path(__file__).resolve().parent / "results"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# Each sampler at the smallest budget its study runs (SITCOM N 5 K 10; DAPS at 50 levels with the
# DAPS-1K inner steps), so the table compares samplers a user would run at a small budget.
SAMPLERS: dict[str, Callable[[], Solver]] = {
    "DPS, 20 steps": lambda: DPS(num_steps=20, zeta=10.0),
    "DiffPIR, 20 steps": lambda: DiffPIR(num_steps=20),
    "SITCOM, N 5, K 10": lambda: SITCOM(num_steps=5, consistency_steps=10),
    # the cheaper EquiReg placements the SITCOM studies tune: a short phase, the penalty in the objective
    "SITCOM, N 5, K 10, 3 phase steps": lambda: SITCOM(num_steps=5, consistency_steps=10, equi_phase_steps=3),
    "SITCOM, N 5, K 10, penalty in the objective": lambda: SITCOM(num_steps=5, consistency_steps=10,
                                                                  equireg_placement="objective"),
    "DAPS, 50 levels": lambda: DAPS(annealing_steps=50),
}


def timed_run(prior, op, x, y, reg, steps: int, solver: Solver | None = None):
    """One run (DPS at ``steps`` unless ``solver`` is given) on the batch ``x`` (measurement ``y``)
    with the benchmark's seeded streams."""
    idx = range(x.shape[0])
    gens = [sample_generator(0, i, STREAM_SOLVER) for i in idx]
    rg = [sample_generator(0, i, STREAM_REGULARIZER) for i in idx]
    solver = solver or DPS(num_steps=steps, zeta=10.0)
    return solver.sample(prior, tuple(x.shape), gens, Guidance(op, y, reg, rg))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--batches", type=int, nargs="*", default=[1, 4, 16, 64], help="throughput batch sizes")
    p.add_argument("--out", default="", help="subfolder of benchmarks/results (quick suite: quick)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--samplers", action="store_true", help="only the per-sampler table (sampler_cost.md)")
    a = p.parse_args()
    out_dir = RESULTS / a.out
    dev = torch.device(a.device)
    prior = DiffusersUNetPrior(weights="mnist32").eval().requires_grad_(False).to(dev)
    x = mnist32()[0][split_indices("test")[: a.batch]]
    idx = list(range(a.batch))
    op = BoxInpainting()
    y = simulate(op, x, [sample_generator(0, i, STREAM_MEASUREMENT) for i in idx]).to(dev)
    x, op = x.to(dev), op.to(dev)
    probe = Pretrained(SmallCNN(1, 32, 4, 16), "mnist32_probe_separation").requires_grad_(False).to(dev)
    if a.samplers:
        reg = EquiReg(PriorDenoiser(20).bind(prior), "hflip", form="equi_plus", alpha=0.01)
        sampler_costs(prior, op, x, y, reg, a.repeats, out_dir, dev)
        return
    regs = {
        "dps": None,
        "equireg_denoiser": EquiReg(PriorDenoiser(20).bind(prior), "hflip", form="equi_plus", alpha=0.01),
        "equireg_probe": EquiReg(probe, "hflip", form="equi", reduction="mse", alpha=0.01),
    }
    times: dict[str, list[float]] = {k: [] for k in regs}
    net: dict[str, list[float]] = {k: [] for k in regs}
    pure: list[float] = []
    for _ in range(a.repeats):
        for name, reg in regs.items():
            out = timed_run(prior, op, x, y, reg, a.steps)
            times[name].append(out.total_seconds)
            net[name].append(out.network_seconds)
        sync(dev)
        t0 = time.perf_counter()
        t = torch.full((a.batch,), 500, device=dev)
        for _ in range(a.steps):
            xi = torch.randn_like(x).requires_grad_(True)
            torch.autograd.grad(prior(xi, t).sum(), xi)
        sync(dev)
        pure.append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {
        "seconds_median": med,
        "network_seconds_median": {k: statistics.median(v) for k, v in net.items()},
        "pure_network_fwd_bwd_seconds_median": statistics.median(pure),
        "ratio_equireg_denoiser_over_dps": med["equireg_denoiser"] / med["dps"],
        "ratio_equireg_probe_over_dps": med["equireg_probe"] / med["dps"],
        "ratio_dps_over_pure_network": med["dps"] / statistics.median(pure),
        "setup": vars(a) | {"task": "box_inpainting", "machine": machine(dev)},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cost.json").write_text(json.dumps(res, indent=2) + "\n")
    (out_dir / "cost.md").write_text(
        f"| measure ({a.batch} digits, {a.steps} steps, median of {a.repeats}) | ratio |\n|---|---|\n"
        f"| DPS + EquiReg (denoiser f) / DPS | {res['ratio_equireg_denoiser_over_dps']:.2f} |\n"
        f"| DPS + EquiReg (probe f) / DPS | {res['ratio_equireg_probe_over_dps']:.2f} |\n"
        f"| DPS / pure network forward+backward | {res['ratio_dps_over_pure_network']:.2f} |\n\n"
        f"Machine: {res['setup']['machine']}.\n")
    print(json.dumps(res, indent=2))
    if a.batches:
        throughput(prior, regs, a.batches, a.steps, a.repeats, out_dir, dev)


def sampler_costs(prior, op, x, y, reg, repeats: int, out_dir: Path, dev: torch.device) -> None:
    """Every sampler in ``SAMPLERS`` alone and with ``reg``, interleaved; medians over ``repeats``."""
    runs: dict[tuple[str, bool], list] = {(name, r): [] for name in SAMPLERS for r in (False, True)}
    for _ in range(repeats):
        for name, make in SAMPLERS.items():
            for with_reg in (False, True):
                sync(dev)
                runs[name, with_reg].append(timed_run(prior, op, x, y, reg if with_reg else None, 0, make()))
    rows = []
    for name in SAMPLERS:
        alone, regularized = runs[name, False], runs[name, True]
        seconds = statistics.median(o.total_seconds for o in alone)
        with_reg = statistics.median(o.total_seconds for o in regularized)
        rows.append({"sampler": name, "seconds_per_sample": seconds / x.shape[0], "nfe": alone[0].nfe,
                     "time_over_network": seconds / statistics.median(o.network_seconds for o in alone),
                     "equireg_seconds_per_sample": with_reg / x.shape[0], "equireg_over_sampler": with_reg / seconds})
    res = {"rows": rows, "batch": x.shape[0], "repeats": repeats, "task": "box_inpainting", "machine": machine(dev)}
    write_table(out_dir, "sampler_cost", res,
                ["sampler", "s / sample", "network evaluations", "time / network", "+ EquiReg: s / sample",
                 "EquiReg / sampler"],
                lambda r: [r["sampler"], f"{r['seconds_per_sample']:.3f}", str(r["nfe"]), f"{r['time_over_network']:.2f}",
                           f"{r['equireg_seconds_per_sample']:.3f}", f"{r['equireg_over_sampler']:.2f}"],
                f"Box inpainting, {x.shape[0]} digits per run, median of {repeats} interleaved runs; machine: {res['machine']}.")


def write_table(out_dir: Path, name: str, res: dict, columns: list[str], cells: Callable[[dict], list[str]],
                footer: str) -> None:
    """``<name>.json`` (all of ``res``) and ``<name>.md`` (a row per entry of ``res["rows"]``, then ``footer``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in res["rows"]]
    text = "\n".join(lines) + f"\n\n{footer}\n"
    (out_dir / f"{name}.md").write_text(text)
    print(text)


def throughput(prior, regs: dict, batches: list[int], steps: int, repeats: int, out_dir: Path,
               dev: torch.device) -> None:
    """Seconds per step per sample at each batch size (median over repeats), network vs the rest."""
    images = mnist32()[0][split_indices("test")]
    op = BoxInpainting().to(dev)
    rows = []
    for b in batches:
        x = images[torch.arange(b) % len(images)]
        y = simulate(op, x.to(dev), [sample_generator(0, i, STREAM_MEASUREMENT) for i in range(b)])
        x = x.to(dev)
        for name, reg in regs.items():
            runs = [timed_run(prior, op, x, y, reg, steps) for _ in range(repeats)]
            o = sorted(runs, key=lambda r: r.total_seconds)[len(runs) // 2]
            per = b * steps
            rows.append({"batch": b, "method": name, "ms_per_step_per_sample": 1e3 * o.total_seconds / per,
                         "network_ms": 1e3 * o.network_seconds / per,
                         "other_ms": 1e3 * (o.total_seconds - o.network_seconds) / per,
                         "samples_per_second_at_1000_steps": per / o.total_seconds / 1000})
    res = {"rows": rows, "steps": steps, "repeats": repeats, "task": "box_inpainting",
           "machine": machine(dev)}
    write_table(out_dir, "throughput", res,
                ["batch", "method", "ms / step / sample", "network fwd+bwd", "everything else", "samples / s at 1000 steps"],
                lambda r: [str(r["batch"]), r["method"], f"{r['ms_per_step_per_sample']:.2f}", f"{r['network_ms']:.2f}",
                           f"{r['other_ms']:.2f}", f"{r['samples_per_second_at_1000_steps']:.3f}"],
                f"{steps} steps, median of {repeats}; machine: {res['machine']}.")


if __name__ == "__main__":
    main()
