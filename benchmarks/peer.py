"""Peer run: our DPS against deepinv's ``deepinv.sampling.DPS`` on the same network, operator,
noise and step count (MNIST 32x32 test digits).

    python -m benchmarks.peer --task box_inpainting --steps 1000 --n 16

deepinv runs the shipped prior through :class:`equireg_lit.diffusion.DeepinvDenoiser`, once at
its defaults (DDPM solver, ``weight`` 1.0, float64 SDE arithmetic) and once with ``dtype`` float32.
Ours runs with the zeta tuned on the validation split for that step count (configs/tuned/mnist32/<task>_s<steps>.yaml, else the
50-step value). Measurements come from the same
per-sample generators; every method sees identical ``y``. Reports PSNR/SSIM (mean, paired
difference to ours with a 95 % interval) and wall time relative to ours, all measured in one run.
Writes benchmarks/results/<out>/peer_<task>_s<steps>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.runner import tuned_value
from benchmarks.stats import machine, mean_se, paired
from benchmarks.study import task_operator
from equireg_lit.callbacks.prediction_writer import image_metrics
from equireg_lit.data.mnist import mnist32, split_indices
from equireg_lit.diffusion import DeepinvDenoiser, DiffusersUNetPrior
from equireg_lit.rng import STREAM_MEASUREMENT, STREAM_SOLVER, sample_generator
from equireg_lit.physics import simulate
from equireg_lit.solvers import DPS, Guidance

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def tuned_zeta(task: str, steps: int) -> tuple[float, int]:
    """Our zeta: the one tuned on validation digits at ``steps``, else the 50-step one."""
    part = REPO / "configs" / "tuned" / "mnist32" / f"{task}_s{steps}.yaml"
    at = steps if part.is_file() else 50
    return float(tuned_value("mnist32", f"{task}_s{at}", "solver.zeta")), at


def run_peer(task: str, steps: int, n: int, batch: int, out_dir: Path) -> dict:
    torch.manual_seed(0)
    prior = DiffusersUNetPrior(weights="mnist32").eval().requires_grad_(False)
    images, labels = mnist32()
    x = images[split_indices("test")[:n]]
    op = task_operator(task)
    zeta, zeta_steps = tuned_zeta(task, steps)
    methods = {"ours": None, "deepinv_default": torch.float64, "deepinv_float32": torch.float32}
    recon = {k: [] for k in methods}
    seconds = {k: 0.0 for k in methods}
    for s in range(0, n, batch):
        idx = list(range(s, min(s + batch, n)))
        xb = x[idx]
        y = simulate(op, xb, [sample_generator(0, i, STREAM_MEASUREMENT) for i in idx])
        # interleaved per batch, so machine noise hits all methods alike
        for name, dtype in methods.items():
            t0 = time.perf_counter()
            if dtype is None:
                out = DPS(num_steps=steps, zeta=zeta).sample(
                    prior, tuple(xb.shape), [sample_generator(0, i, STREAM_SOLVER) for i in idx], Guidance(op, y)).x
            else:
                import deepinv

                sampler = deepinv.sampling.DPS(DeepinvDenoiser(prior), num_steps=steps, dtype=dtype,
                                               rng=torch.Generator().manual_seed(s))
                out = sampler(y, op, seed=s).float().detach()
            seconds[name] += time.perf_counter() - t0
            recon[name].append(out)
    rows = {k: [image_metrics(r, t) for r, t in zip(torch.cat(v), x, strict=True)] for k, v in recon.items()}
    per = {k: dict(enumerate(v)) for k, v in rows.items()}
    res = {
        "task": task, "steps": steps, "n": n, "zeta_ours": zeta, "zeta_tuned_at_steps": zeta_steps,
        "metrics": {k: {m: mean_se([r[m] for r in v]) for m in ("psnr", "ssim")} for k, v in rows.items()},
        "diff_vs_ours": {k: {m: paired(per["ours"], per[k], m) for m in ("psnr", "ssim")} for k in methods if k != "ours"},
        "seconds": seconds, "time_ratio_vs_ours": {k: seconds[k] / seconds["ours"] for k in methods},
        "machine": machine(), "deepinv_version": __import__("deepinv").__version__,
        "command": f"python -m benchmarks.peer --task {task} --steps {steps} --n {n}",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"peer_{task}_s{steps}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [f"| method ({task}, {steps} steps, n = {n}) | PSNR | ΔPSNR vs ours [95% CI] | SSIM | time / ours |",
             "|---|---|---|---|---|"]
    for k in methods:
        m = res["metrics"][k]
        d = res["diff_vs_ours"].get(k, {}).get("psnr")
        ds = "—" if d is None else f"{d['mean_diff']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
        label = {"ours": f"equireg-lit DPS (zeta {zeta}, float32)", "deepinv_default": "deepinv DPS, defaults (weight 1, float64)",
                 "deepinv_float32": "deepinv DPS, float32"}[k]
        lines.append(f"| {label} | {m['psnr'][0]:.2f} ± {m['psnr'][1]:.2f} | {ds} | {m['ssim'][0]:.3f} | "
                     f"{res['time_ratio_vs_ours'][k]:.2f} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + f"\n\ndeepinv {res['deepinv_version']}; machine: {res['machine']}. "
                                       f"Command: `{res['command']}`\n")
    print(stem.with_suffix(".md").read_text())
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="box_inpainting")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--out", default="", help="subfolder of benchmarks/results (quick suite: quick)")
    a = p.parse_args()
    run_peer(a.task, a.steps, a.n, a.batch, RESULTS / a.out)


if __name__ == "__main__":
    main()
