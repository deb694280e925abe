"""One entry point for every benchmark: ``python -m benchmarks.run --suite quick|full``.

quick (under 10 minutes on 2 CPU cores; results under benchmarks/results/quick/): DPS vs DPS +
EquiReg (probe f, denoiser f) on 16 MNIST test digits for box inpainting and SR x4 at 20 steps
with the committed validation-tuned zeta/alpha; cost ratios and throughput at batch 1/4/16; the
deepinv DPS peer run (50 steps, 8 digits); PDE solver validation; a Darcy comparison on 8 test
samples at 20 steps.

full (hours on CPU, minutes of a GPU for the quality cells; results under benchmarks/results/,
docs result sections regenerated): 7 MNIST tasks x steps 20/50/100/1000 x the three methods on 100
test digits. Tuning is on validation digits only: alpha per task and f over 0.001 / 0.01 / 0.1 / 1
at 50 steps (the 50-step zeta; 32 digits, 16 for four tasks whose 50-step zeta grid used 16),
reused at every step count; zeta per task and step count (16 digits, 8 at 1000 steps) over the
50-step choice scaled by 50/steps times 1/3, 1, 3, extended by factors of 3 past a winning edge
(at most --zeta-extensions times). Then cost (median of 3, batches 1/4/16/64), the peer run at
1000 steps, PDE validation and comparisons (benchmarks/darcy_all.sh and
benchmarks/helmholtz_all.sh: 20, 50 and 100 steps; DPS, + EquiReg, + PDE residual).
Every stage resumes: finished samples are kept on disk (runs/), tuning adds only new values, and a
comparison whose committed result already has the tuned zeta, alpha and n is skipped
(--recompute reruns it). benchmarks/quality_gpu.sh runs the quality stage one process per task on
a GPU.

    python -m benchmarks.run --suite quick
    python -m benchmarks.run --suite full [--only tune quality cost peer pde report] [--steps 20 50]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.mnist32_restoration import load_tuning

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
TASKS = ["box_inpainting", "random_inpainting", "sr4", "gaussian_blur", "motion_blur", "phase_retrieval", "hdr"]
SUITES = {
    "quick": {"tasks": ["box_inpainting", "sr4"], "steps": [20], "n": 16, "tune": False, "out": "quick",
              "cost": ["--repeats", "1", "--steps", "10", "--batch", "8", "--batches", "1", "4", "16"],
              "peer": ["--task", "box_inpainting", "--steps", "50", "--n", "8", "--batch", "8"],
              "pde": [["-m", "benchmarks.pde_validation", "--out", "quick"],
                      ["-m", "benchmarks.pde_restoration", "--out", "quick", "--runs", "runs/bench_quick_pde",
                       "compare", "--problem", "darcy", "--steps", "20", "--n", "8"]]},
    "full": {"tasks": TASKS, "steps": [20, 50, 100, 1000], "n": 100, "tune": True, "out": "",
             "cost": ["--repeats", "3", "--steps", "20", "--batch", "16", "--batches", "1", "4", "16", "64"],
             "peer": ["--task", "box_inpainting", "--steps", "1000", "--n", "16", "--batch", "16"],
             "pde": [["-m", "benchmarks.pde_validation"], ["bash", "benchmarks/darcy_all.sh"],
                     ["bash", "benchmarks/helmholtz_all.sh"]]},
}
VARIANTS = ("probe", "denoiser")


def sh(args: list[str]) -> None:
    """Run one benchmark module in a fresh interpreter (isolated globals, one log line per stage),
    or a reproduction script (``bash benchmarks/<name>_all.sh``, which train what they need first)."""
    print(f"[benchmarks.run] {' '.join(args)}", flush=True)
    cmd = args if args[0] == "bash" else [sys.executable, *args]
    subprocess.run(cmd, cwd=REPO, check=True, env=os.environ | {"PY": sys.executable})


def restoration(*args: str) -> list[str]:
    return ["-m", "benchmarks.mnist32_restoration", *args]


def tuned(task: str, steps: int, variant: str = "denoiser") -> dict | None:
    return load_tuning(task, steps, variant, missing_ok=True)


def zeta_grid(task: str, steps: int) -> list[str]:
    """The 50-step zeta scaled by 50 / steps (guidance acts once per step), times 1/3, 1 and 3."""
    base = tuned(task, 50)["best_zeta"] * 50 / steps
    return [f"{v:.2g}" for v in (base / 3, base, base * 3)]


ALPHAS = ["0.001", "0.01", "0.1", "1"]  # EquiReg weights tried at 50 steps, for every f


def tune_stage(tasks: list[str], steps_list: list[int], zeta_extensions: int = 2) -> None:
    """Validation tuning that is missing. alpha per f at 50 steps over ALPHAS (at the 50-step
    zeta); zeta at every other step count over the scaled grid (zeta_grid), extended by factors
    of 3 past whichever edge wins, at most ``zeta_extensions`` times. Values measured before
    are kept (``tune`` adds to a result), so rerunning costs only what is new."""
    for task in tasks:
        for variant in VARIANTS:
            t = tuned(task, 50, variant)
            n = str(t["n"]) if t else "32"
            if t is None or not set(map(float, ALPHAS)) <= set(map(float, t["equireg"])):
                sh(restoration("--variant", variant, "tune", "--task", task, "--steps", "50", "--n", n,
                               "--zetas", str(tuned(task, 50)["best_zeta"]), "--alphas", *ALPHAS))
        for steps in steps_list:
            if steps == 50:
                continue
            n = "8" if steps >= 1000 else "16"
            if tuned(task, steps) is None:
                sh(restoration("--batch-size", n, "tune", "--task", task, "--steps", str(steps), "--n", n,
                               "--zetas", *zeta_grid(task, steps), "--alphas"))
            for _ in range(zeta_extensions):
                t = tuned(task, steps)
                zetas, best = sorted(map(float, t["dps"])), t["best_zeta"]
                if zetas[0] < best < zetas[-1]:
                    break
                beyond = best * 3 if best == zetas[-1] else best / 3
                sh(restoration("--batch-size", str(t["n"]), "tune", "--task", task, "--steps", str(steps),
                               "--n", str(t["n"]), "--zetas", f"{beyond:.2g}", "--alphas"))


def quality_stage(suite: dict, tasks: list[str], steps_list: list[int], batch_size: int | None = None,
                  zeta_extensions: int = 2, recompute: bool = False, compare: bool = True) -> None:
    if suite["tune"]:
        tune_stage(tasks, steps_list, zeta_extensions)
    if not compare:
        return
    runs = "runs/bench" if not suite["out"] else f"runs/bench_{suite['out']}"
    for steps in steps_list:  # cheapest step counts first: a stopped full suite still fills whole rows
        for variant in VARIANTS:
            # tuned suite: zeta at this step count, alpha at 50; quick: the committed 50-step tuning
            extra = ["--alpha-steps", "50"] if suite["tune"] else ["--tune-steps", "50"]
            batch = batch_size or (50 if steps >= 1000 else 16)
            sh(restoration("--variant", variant, "--batch-size", str(batch),
                           "--out", suite["out"], "--runs", runs,
                           "compare", "--tasks", *tasks, "--steps", str(steps), "--n", str(suite["n"]), *extra,
                           *(["--recompute"] if recompute or not suite["tune"] else [])))


def report(out_dir: Path, tasks: list[str], steps_list: list[int]) -> None:
    """One table and one plot over every (task, steps) cell: paired differences to DPS per f."""
    rows = []
    for steps in steps_list:
        by_variant = {}
        for variant in VARIANTS:
            f = out_dir / f"mnist32_compare_s{steps}{'' if variant == 'denoiser' else '_' + variant}.json"
            by_variant[variant] = {r["task"]: r for r in json.loads(f.read_text())["rows"]} if f.is_file() else {}
        for task in tasks:
            cell = {v: by_variant[v].get(task) for v in VARIANTS}
            rows.append({"task": task, "steps": steps, **cell})
    (out_dir / "mnist32_quality.json").write_text(json.dumps(rows, indent=2) + "\n")

    def diff(r: dict | None, key: str, fmt: str) -> str:
        if r is None:
            return "not run"
        d = r["diff"][key]
        return f"{d['mean_diff']:{fmt}} [{d['ci95'][0]:{fmt}}, {d['ci95'][1]:{fmt}}]"

    lines = ["| task | steps | n | zeta | alpha probe / denoiser | PSNR DPS | ΔPSNR probe [95% CI] | ΔPSNR denoiser [95% CI] | "
             "ΔSSIM probe | ΔSSIM denoiser | digit acc. DPS / probe / denoiser | device |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        any_r = r["denoiser"] or r["probe"]
        if any_r is None:
            lines.append(f"| {r['task']} | {r['steps']} | — | — | — | not run | not run | not run | not run | not run | — | — |")
            continue
        acc = [any_r["digit_accuracy"]["dps"]] + [r[v]["digit_accuracy"]["equireg"] if r[v] else None for v in VARIANTS]
        alphas = " / ".join(str(r[v]["alpha"]) if r[v] else "—" for v in VARIANTS)
        lines.append(
            f"| {r['task']} | {r['steps']} | {any_r['n']} | {any_r['zeta']} | {alphas} | {any_r['dps']['psnr'][0]:.2f} | "
            f"{diff(r['probe'], 'psnr', '+.2f')} | {diff(r['denoiser'], 'psnr', '+.2f')} | "
            f"{diff(r['probe'], 'ssim', '+.3f')} | {diff(r['denoiser'], 'ssim', '+.3f')} | "
            + " / ".join("—" if a is None else f"{a:.2f}" for a in acc) + f" | {device(r)} |")
    (out_dir / "mnist32_quality.md").write_text(
        "\n".join(lines) + "\n\nΔ = DPS + EquiReg − DPS on the same test digits, seeds and measurements "
        "(paired, 95 % t-interval). Plot: mnist32_quality.png.\n")
    plot(rows, out_dir / "mnist32_quality.png")


def device(cell: dict) -> str:
    """Where a cell's paired runs ran (both methods of one f always run on the same machine)."""
    names = {r["machine"].split(", ")[-1] for r in (cell["probe"], cell["denoiser"]) if r}
    return " / ".join(sorted("CPU" if n == "CPU only" else n for n in names))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows}, key=[r["task"] for r in rows].index)
    cols = min(4, len(tasks))
    fig, axes = plt.subplots(math.ceil(len(tasks) / cols), cols, figsize=(3.2 * cols, 2.6 * math.ceil(len(tasks) / cols)),
                             squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        for k, variant in enumerate(VARIANTS):
            pts = [(r["steps"], r[variant]["diff"]["psnr"]) for r in rows if r["task"] == task and r[variant]]
            if pts:
                xs = [p[0] * (1.06 if k else 0.94) for p in pts]
                ys = [p[1]["mean_diff"] for p in pts]
                err = [[y - p[1]["ci95"][0] for y, p in zip(ys, pts, strict=True)],
                       [p[1]["ci95"][1] - y for y, p in zip(ys, pts, strict=True)]]
                ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=3, label=f"f = {variant}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("steps", fontsize=8)
        ax.set_ylabel("ΔPSNR vs DPS (dB)", fontsize=8)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=list(SUITES), required=True)
    p.add_argument("--only", nargs="+", choices=["tune", "quality", "cost", "peer", "pde", "report"], default=None,
                   help="run only these stages (default: all but tune, which quality includes)")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=None, help="MNIST tasks (default: the suite's)")
    p.add_argument("--steps", type=int, nargs="+", default=None, help="step counts (default: the suite's)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="predict batch size of the test comparisons (default: 16, 50 at 1000 steps; a GPU: 100)")
    p.add_argument("--zeta-extensions", type=int, default=2, help="times a zeta grid may grow past a winning edge")
    p.add_argument("--recompute", action="store_true",
                   help="rerun comparisons whose committed result has the same zeta, alpha and n (quick always does)")
    a = p.parse_args()
    suite = SUITES[a.suite]
    tasks, steps_list = a.tasks or suite["tasks"], a.steps or suite["steps"]
    stages = a.only or ["quality", "cost", "peer", "pde", "report"]
    out_dir = RESULTS / suite["out"]
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    t0 = time.perf_counter()
    if "quality" in stages or "tune" in stages:
        quality_stage(suite, tasks, steps_list, a.batch_size, a.zeta_extensions, a.recompute,
                      compare="quality" in stages)
    if "cost" in stages:
        sh(["-m", "benchmarks.cost", *suite["cost"], "--out", suite["out"]])
    if "peer" in stages:
        sh(["-m", "benchmarks.peer", *suite["peer"], "--out", suite["out"]])
    if "pde" in stages:
        for cmd in suite["pde"]:
            sh(cmd)
    if "report" in stages:
        report(out_dir, suite["tasks"], suite["steps"])
        if a.suite == "full":
            sh(["-m", "benchmarks.update_readme"])
    print(f"[benchmarks.run] suite {a.suite} done in {time.perf_counter() - t0:.0f} s; results in {out_dir}", flush=True)


if __name__ == "__main__":
    main()
