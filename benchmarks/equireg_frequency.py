"""EquiReg's frequency as a cost lever: DPS + EquiReg (the prior's denoiser as f) applying the
penalty every step, every 2nd, 4th or 10th step (``freq`` 1 / 0.5 / 0.25 / 0.1), or every step of
the noisier half only (``schedule: cutoff``) or of the less noisy half only (``schedule: late``),
against plain DPS on the same test digits.

    python -m benchmarks.equireg_frequency [--task gaussian_blur] [--steps 100] [--n 100]

zeta and alpha are the validation-tuned values of the shipped configs at that step count (alpha
was tuned at freq 1 and is kept for every setting). Each row is ``equireg predict`` through the
shipped config (resumable under runs/bench/test/); time is the mean per-sample wall time relative to
plain DPS, all rows run one after another on one machine. Writes
benchmarks/results/equireg_frequency_<task>_s<steps>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.mnist32_restoration import RUNS_DIR, load_tuning, machine, mean_se, paired, predict_metrics

RESULTS = Path(__file__).resolve().parent / "results"
REG = "--model.init_args.regularizer.init_args."
SETTINGS = {  # name -> overrides of the regularizer
    "freq 1 (every step)": [f"{REG}freq", "1.0"],
    "freq 0.5": [f"{REG}freq", "0.5"],
    "freq 0.25": [f"{REG}freq", "0.25"],
    "freq 0.1 (reference default)": [f"{REG}freq", "0.1"],
    "noisier half only (cutoff)": [f"{REG}schedule", "cutoff", f"{REG}cutoff_steps", "{half}"],
    "less noisy half only (late)": [f"{REG}schedule", "late", f"{REG}cutoff_steps", "{half}"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="gaussian_blur")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--n", type=int, default=100)
    args = p.parse_args()
    zeta = load_tuning(args.task, args.steps)["best_zeta"]
    alpha = (load_tuning(args.task, args.steps, missing_ok=True) or {}).get("best_alpha") or load_tuning(
        args.task, 50)["best_alpha"]
    root = RUNS_DIR / "test" / "frequency"
    base = predict_metrics(f"mnist32_{args.task}_dps", root / f"{args.task}_s{args.steps}_dps", args.steps, "test",
                           args.n, zeta, None, [])
    rows = []
    for name, overrides in SETTINGS.items():
        overrides = [o.replace("{half}", str(args.steps // 2)) for o in overrides]
        tag = "_".join(o.removeprefix(REG) for o in overrides)
        reg = predict_metrics(f"mnist32_{args.task}_dps_equireg", root / f"{args.task}_s{args.steps}_{tag}",
                              args.steps, "test", args.n, zeta, alpha, overrides)
        d = paired(base, reg, "psnr")
        t_base = mean_se([r["seconds"] for r in base.values()])[0]
        rows.append({"setting": name, "overrides": overrides, "delta_psnr": d["mean_diff"], "ci95": d["ci95"],
                     "wins": d["wins"], "n": d["n"], "nfe": next(iter(reg.values()))["nfe"],
                     "time_ratio": mean_se([r["seconds"] for r in reg.values()])[0] / t_base})
    psnr_base = mean_se([r["psnr"] for r in base.values()])
    out = {"task": args.task, "steps": args.steps, "zeta": zeta, "alpha": alpha, "psnr_dps": psnr_base, "rows": rows,
           "machine": machine(), "command": f"python -m benchmarks.equireg_frequency --task {args.task} "
                                            f"--steps {args.steps} --n {args.n}"}
    stem = RESULTS / f"equireg_frequency_{args.task}_s{args.steps}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    md = [f"| EquiReg (denoiser f) on {args.task}, {args.steps} steps | ΔPSNR vs DPS [95% CI] | digits improved | "
          "network evaluations / sample | time / DPS |", "|---|---|---|---|---|"]
    md += [f"| {r['setting']} | {r['delta_psnr']:+.2f} [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}] | {r['wins']}/{r['n']} | "
           f"{int(r['nfe'])} | {r['time_ratio']:.2f} |" for r in rows]
    md += ["", f"DPS alone: {psnr_base[0]:.2f} ± {psnr_base[1]:.2f} dB, {args.steps} network evaluations per sample; "
           f"zeta {zeta}, alpha {alpha} (tuned on validation at freq 1). {args.n} MNIST test digits. "
           f"Machine: {out['machine']}. Command: `{out['command']}`"]
    stem.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
