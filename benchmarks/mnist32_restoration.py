"""MNIST 32x32 restoration: tune on the validation split, compare paired on the test split.

    python -m benchmarks.mnist32_restoration tune --task box_inpainting --steps 50 --n 32 \
        --zetas 0.3 1 3 --alphas 0.01 0.1 1
    python -m benchmarks.mnist32_restoration compare --tasks box_inpainting sr4 hdr --steps 50 --n 100

Every run goes through the real CLI (``equireg predict`` in process) with the shipped configs
and overrides, so each number can be reproduced with one command; per-sample outputs land in
``runs/bench/...`` and a rerun resumes. Tuning uses the validation split only; ``compare``
uses the test split with the tuned values and reports paired differences (EquiReg - DPS) with
95 % t-intervals. Results: benchmarks/results/mnist32_{tune,compare}_*.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import json
import math
import platform
import time
from pathlib import Path

import torch

from equireg_lit.utils.io import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"  # tuning results (always validation, always here)
REPO = Path(__file__).resolve().parent.parent
OUT_DIR = RESULTS  # comparison results; the quick suite writes under results/quick
RUNS_DIR = REPO / "runs" / "bench"  # per-sample predict outputs (resumable)
PRIOR_WEIGHTS = "mnist32"
VARIANT = "denoiser"  # f of the EquiReg configs; "probe": the shipped separation probe instead
BATCH_SIZE: int | None = None  # None: the config's; results do not depend on it (per-sample generators)


def tuning_path(task: str, steps: int, variant: str = "denoiser") -> Path:
    """Where ``tune`` writes (and everything else reads) one validation tuning result."""
    return RESULTS / f"mnist32_tune_{task}_s{steps}{'' if variant == 'denoiser' else '_' + variant}.json"


def load_tuning(task: str, steps: int, variant: str = "denoiser", missing_ok: bool = False) -> dict | None:
    """A tuning result; a missing one is None with ``missing_ok``, else an error naming the command."""
    path = tuning_path(task, steps, variant)
    if not path.is_file():
        if missing_ok:
            return None
        raise FileNotFoundError(f"no tuning result {path.name}; run: python -m benchmarks.mnist32_restoration "
                                f"--variant {variant} tune --task {task} --steps {steps}")
    return json.loads(path.read_text())


def variant_args() -> list[str]:
    """CLI overrides that swap the configs' regularizer for the shipped probe's block."""
    if VARIANT == "denoiser":
        return []
    prov = json.loads((REPO / "equireg_lit" / "weights" / "mnist32_probe_separation.json").read_text())
    block = prov["regularizer_block"]["init_args"]
    f = dict(block["f"])
    f["init_args"] = dict(f["init_args"], weights="mnist32_probe_separation")
    return ["--model.init_args.regularizer.init_args.f", json.dumps(f),
            "--model.init_args.regularizer.init_args.group", block["group"],
            "--model.init_args.regularizer.init_args.form", block["form"],
            "--model.init_args.regularizer.init_args.reduction", block["reduction"]]


def predict_metrics(config: str, root: Path, steps: int, split: str, n: int, zeta: float, alpha: float | None,
                    extra: list[str]) -> dict[int, dict]:
    """``equireg predict`` (in process) on a shipped config with the benchmark's overrides;
    returns the per-index rows of its metrics.csv. A rerun resumes the same ``root``."""
    from equireg_lit.cli import main

    args = [
        "predict", "--config", str(REPO / "configs" / "predict" / f"{config}.yaml"),
        "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
        "--trainer.logger", "false", "--trainer.enable_model_summary", "false",
        "--model.init_args.solver.init_args.num_steps", str(steps),
        "--model.init_args.solver.init_args.zeta", str(zeta),
        "--data.init_args.predict_split", split, "--data.init_args.predict_limit", str(n),
    ]
    if alpha is not None:
        args += ["--model.init_args.regularizer.init_args.alpha", str(alpha)]
    if BATCH_SIZE is not None:
        args += ["--data.init_args.batch_size", str(BATCH_SIZE)]
    main(args + extra)
    with open(root / "predictions" / "metrics.csv") as fh:
        return {int(r["index"]): {k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)}


def run(task: str, equireg: bool, steps: int, split: str, n: int, zeta: float, alpha: float | None,
        extra: list[str] | None = None, tag: str = "") -> dict[int, dict]:
    """Run one MNIST predict config; return per-index metrics."""
    name = f"mnist32_{task}_{'dps_equireg' if equireg else 'dps'}"
    tag = tag + (f"_{VARIANT}" if equireg and VARIANT != "denoiser" else "")
    root = RUNS_DIR / split / f"{name}_s{steps}_z{zeta}_a{alpha}{tag}"
    overrides = (variant_args() if equireg else []) + ["--model.init_args.prior.init_args.weights", PRIOR_WEIGHTS]
    return predict_metrics(name, root, steps, split, n, zeta, alpha if equireg else None, overrides + (extra or []))


def mean_se(v: list[float]) -> tuple[float, float]:
    m = sum(v) / len(v)
    var = sum((x - m) ** 2 for x in v) / max(len(v) - 1, 1)
    return m, math.sqrt(var / len(v))


def paired(a: dict[int, dict], b: dict[int, dict], key: str) -> dict:
    """Paired difference b - a over common indices with a 95 % t-interval."""
    from scipy import stats

    idx = sorted(set(a) & set(b))
    d = [b[i][key] - a[i][key] for i in idx]
    m, se = mean_se(d)
    h = stats.t.ppf(0.975, len(d) - 1) * se if len(d) > 1 else float("nan")
    return {"n": len(d), "mean_diff": m, "ci95": [m - h, m + h], "wins": sum(x > 0 for x in d)}


def digit_accuracy(root_runs: dict[int, dict], recon_dir: Path) -> float | None:
    """Shipped classifier's accuracy on reconstructions (does the digit survive?)."""
    from safetensors.torch import load_file

    from equireg_lit.metrics.digits import load_digit_classifier

    try:
        clf = load_digit_classifier()
    except FileNotFoundError:
        return None
    xs, ys = [], []
    for i, r in root_runs.items():
        if "label" in r:
            xs.append(load_file(str(recon_dir / f"{i:05d}.safetensors"))["reconstruction"])
            ys.append(int(r["label"]))
    with torch.no_grad():
        pred = clf(torch.stack(xs)).argmax(-1)
    return (pred == torch.tensor(ys)).float().mean().item()


def machine(device: torch.device | None = None) -> str:
    """The machine a result came from; the last field names the device (GPU name or "CPU only")."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU only"
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, {where}"


@contextlib.contextmanager
def results_lock():
    """Serialize read-merge-write of the shared result files: several ``compare``/``tune``
    processes (one per task) may finish at the same time."""
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    with open(RUNS_DIR / ".results.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tune(args: argparse.Namespace) -> None:
    """Validation PSNR of DPS per zeta, then of DPS + EquiReg per alpha at the best zeta.

    Adds to an earlier tuning of the same task, steps, split size and f: values already measured
    are kept, so a grid is extended (say past an edge) by naming only the new values."""
    out: dict = {"task": args.task, "steps": args.steps, "split": "val", "n": args.n, "variant": VARIANT,
                 "dps": {}, "equireg": {}, "machines": []}
    prev = load_tuning(args.task, args.steps, VARIANT, missing_ok=True)
    if prev is not None and prev["n"] != args.n:
        prev = None  # another validation size: start afresh
    if prev is not None:
        out["dps"], out["machines"] = dict(prev["dps"]), prev["machines"]
    for z in args.zetas:
        if str(z) not in out["dps"]:
            m = run(args.task, False, args.steps, "val", args.n, z, None)
            out["dps"][str(z)] = mean_se([r["psnr"] for r in m.values()])
    best_z = float(max(out["dps"], key=lambda z: out["dps"][z][0]))
    out["best_zeta"] = best_z
    alphas = [float(a) for a in args.alphas]
    if prev is not None:
        if prev["best_zeta"] == best_z:
            out["equireg"] = dict(prev["equireg"])
        else:  # alphas were measured at another zeta: measure them again at this one
            alphas += [float(a) for a in prev["equireg"]]
    for a in alphas:
        if str(a) not in out["equireg"]:
            m = run(args.task, True, args.steps, "val", args.n, best_z, a)
            out["equireg"][str(a)] = mean_se([r["psnr"] for r in m.values()])
    # No alphas: zeta only (long step counts, where compare takes alpha from a shorter run's tuning).
    out["best_alpha"] = float(max(out["equireg"], key=lambda a: out["equireg"][a][0])) if out["equireg"] else None
    out["machines"] = sorted(set(out["machines"]) | {machine()})
    with results_lock():
        atomic_write_text(tuning_path(args.task, args.steps, VARIANT), json.dumps(out, indent=2) + "\n")
        write_tune_table()
    print(json.dumps(out, indent=2))


def write_tune_table() -> None:
    """One Markdown table over every tuning result (validation split)."""
    lines = ["| task | f | steps | n (val) | DPS PSNR by zeta | DPS+EquiReg PSNR by alpha (at best zeta) | chosen zeta / alpha |",
             "|---|---|---|---|---|---|---|"]
    for f in sorted(RESULTS.glob("mnist32_tune_*.json")):
        t = json.loads(f.read_text())
        dps = ", ".join(f"{z}: {v[0]:.2f}" for z, v in t["dps"].items())
        reg = ", ".join(f"{a}: {v[0]:.2f}" for a, v in t["equireg"].items())
        lines.append(f"| {t['task']} | {t.get('variant', 'denoiser')} | {t['steps']} | {t['n']} | {dps} | {reg or 'n/a'} | "
                     f"{t['best_zeta']} / {t['best_alpha']} |")
    atomic_write_text(RESULTS / "mnist32_tune.md", "\n".join(lines) + "\n")


def compare_stem(steps: int) -> Path:
    """Comparison results of one step count and f: ``<stem>.json`` and ``<stem>.md``."""
    return OUT_DIR / f"mnist32_compare_s{steps}{'' if VARIANT == 'denoiser' else '_' + VARIANT}"


def compare(args: argparse.Namespace) -> None:
    rows = []
    stem = compare_stem(args.steps)
    done = {r["task"]: r for r in json.loads(stem.with_suffix(".json").read_text())["rows"]} \
        if stem.with_suffix(".json").is_file() else {}
    for task in args.tasks:
        tune_steps = args.tune_steps or args.steps
        # zeta: DPS tuned at tune_steps; alpha: this f's tuning at alpha_steps (default the same run).
        z = load_tuning(task, tune_steps)["best_zeta"]
        alpha_steps = args.alpha_steps or tune_steps
        a = load_tuning(task, alpha_steps, VARIANT)["best_alpha"]
        old = done.get(task)
        if not args.recompute and old is not None and (old["zeta"], old["alpha"], old["n"]) == (z, a, args.n):
            print(f"{task}: result for zeta {z}, alpha {a}, n {args.n} is up to date (--recompute to redo)", flush=True)
            continue
        t0 = time.perf_counter()
        base = run(task, False, args.steps, "test", args.n, z, None)
        t1 = time.perf_counter()
        reg = run(task, True, args.steps, "test", args.n, z, a)
        t2 = time.perf_counter()
        vtag = "" if VARIANT == "denoiser" else "_" + VARIANT
        name = lambda e, al: f"mnist32_{task}_{'dps_equireg' if e else 'dps'}_s{args.steps}_z{z}_a{al}{vtag if e else ''}"  # noqa: E731
        acc_b = digit_accuracy(base, RUNS_DIR / "test" / name(False, None) / "predictions/samples")
        acc_r = digit_accuracy(reg, RUNS_DIR / "test" / name(True, a) / "predictions/samples")
        row = {
            "task": task, "steps": args.steps, "zeta": z, "alpha": a, "n": len(base),
            "zeta_tuned_at_steps": tune_steps, "alpha_tuned_at_steps": alpha_steps,
            "dps": {k: mean_se([r[k] for r in base.values()]) for k in ("psnr", "ssim")},
            "equireg": {k: mean_se([r[k] for r in reg.values()]) for k in ("psnr", "ssim")},
            "diff": {k: paired(base, reg, k) for k in ("psnr", "ssim")},
            "digit_accuracy": {"dps": acc_b, "equireg": acc_r},
            "seconds_per_sample": {"dps": mean_se([r["seconds"] for r in base.values()])[0],
                                   "equireg": mean_se([r["seconds"] for r in reg.values()])[0]},
            "wall_seconds_this_run": {"dps": t1 - t0, "equireg": t2 - t1},
            "machine": machine(),
        }
        rows.append(row)
        print(json.dumps(row, indent=2), flush=True)
    if rows:
        with results_lock():
            write_compare(rows, args)


def write_compare(rows: list[dict], args: argparse.Namespace) -> None:
    """Merge ``rows`` into the step count's comparison JSON (other tasks' rows are kept) and
    regenerate its Markdown table."""
    stem = compare_stem(args.steps)
    if stem.with_suffix(".json").is_file():  # keep other tasks' rows from earlier invocations
        done = {r["task"] for r in rows}
        rows = [r for r in json.loads(stem.with_suffix(".json").read_text())["rows"] if r["task"] not in done] + rows
    res = {"rows": rows, "machines": sorted({r["machine"] for r in rows}), "variant": VARIANT,
           "command": f"python -m benchmarks.mnist32_restoration --variant {VARIANT} compare "
           + f"--tasks {' '.join(r['task'] for r in rows)} --steps {args.steps} --n {args.n}"
           + (f" --tune-steps {args.tune_steps}" if args.tune_steps else "")
           + (f" --alpha-steps {args.alpha_steps}" if args.alpha_steps else "")}
    atomic_write_text(stem.with_suffix(".json"), json.dumps(res, indent=2) + "\n")
    lines = ["| task | steps | zeta | alpha | n | PSNR DPS | PSNR DPS+EquiReg | ΔPSNR [95% CI] | SSIM DPS | SSIM DPS+EquiReg | ΔSSIM [95% CI] | digit acc. DPS / EquiReg | time EquiReg / DPS | machine |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        dp, ds = r["diff"]["psnr"], r["diff"]["ssim"]
        acc = r["digit_accuracy"]
        acc_s = "n/a" if acc["dps"] is None else f"{acc['dps']:.2f} / {acc['equireg']:.2f}"
        ratio = r["seconds_per_sample"]["equireg"] / r["seconds_per_sample"]["dps"]
        lines.append(
            f"| {r['task']} | {r['steps']} | {r['zeta']} | {r['alpha']} | {r['n']} | "
            f"{r['dps']['psnr'][0]:.2f} ± {r['dps']['psnr'][1]:.2f} | {r['equireg']['psnr'][0]:.2f} ± {r['equireg']['psnr'][1]:.2f} | "
            f"{dp['mean_diff']:+.2f} [{dp['ci95'][0]:+.2f}, {dp['ci95'][1]:+.2f}] | "
            f"{r['dps']['ssim'][0]:.3f} | {r['equireg']['ssim'][0]:.3f} | {ds['mean_diff']:+.3f} [{ds['ci95'][0]:+.3f}, {ds['ci95'][1]:+.3f}] | "
            f"{acc_s} | {ratio:.2f} | {r['machine']} |"
        )
    atomic_write_text(stem.with_suffix(".md"),
                      "\n".join(lines) + f"\n\nCommand: `{res['command']}`\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tune")
    t.add_argument("--task", required=True)
    t.add_argument("--steps", type=int, default=50)
    t.add_argument("--n", type=int, default=32)
    t.add_argument("--zetas", type=float, nargs="+", default=[0.3, 1.0, 3.0])
    t.add_argument("--alphas", type=float, nargs="*", default=[0.01, 0.1, 1.0],
                   help="EquiReg weights to try at the best zeta; none: tune zeta only")
    c = sub.add_parser("compare")
    c.add_argument("--tasks", nargs="+", required=True)
    c.add_argument("--steps", type=int, default=50)
    c.add_argument("--tune-steps", type=int, default=None, help="step count whose zeta tuning to use (default: --steps)")
    c.add_argument("--alpha-steps", type=int, default=None, help="step count whose alpha tuning to use (default: --tune-steps)")
    c.add_argument("--n", type=int, default=100)
    c.add_argument("--recompute", action="store_true",
                   help="run tasks whose committed result already has these zeta, alpha and n")
    p.add_argument("--weights", default="mnist32", help="prior weights (shipped name or path)")
    p.add_argument("--variant", choices=["denoiser", "probe"], default="denoiser", help="f of EquiReg")
    p.add_argument("--batch-size", type=int, default=None, help="predict batch size (default: the config's)")
    p.add_argument("--out", default="", help="subfolder of benchmarks/results for comparisons (quick suite: quick)")
    p.add_argument("--runs", default="runs/bench", help="folder of the per-sample predict outputs")
    args = p.parse_args()
    global PRIOR_WEIGHTS, VARIANT, BATCH_SIZE, OUT_DIR, RUNS_DIR
    PRIOR_WEIGHTS, VARIANT, BATCH_SIZE = args.weights, args.variant, args.batch_size
    OUT_DIR, RUNS_DIR = RESULTS / args.out, REPO / args.runs
    tune(args) if args.cmd == "tune" else compare(args)


if __name__ == "__main__":
    main()
