"""PDE reconstruction from 3 % sparse observations: DPS vs DPS + EquiReg, paired.

    python -m benchmarks.pde_restoration tune --problem darcy --direction forward --steps 50 --n 20 --zetas 1 3 10
    python -m benchmarks.pde_restoration compare --problem darcy --steps 50 200 --n 100

Runs the shipped configs (configs/predict/<problem>64_<direction>_*.yaml) through the CLI in
process; tuning uses the validation split, comparisons the test split. Metric: per-channel
relative L2 in physical units (and the Darcy coefficient error rate).
Results: benchmarks/results/pde_{tune,compare}_*.json and .md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.mnist32_restoration import machine, mean_se, paired, predict_metrics

RESULTS = Path(__file__).resolve().parent / "results"  # tuning results (validation split)
REPO = Path(__file__).resolve().parent.parent
OUT_DIR = RESULTS  # comparison results; the quick suite writes under results/quick
RUNS_DIR = REPO / "runs" / "bench_pde"
TARGET = {"forward": "rel_l2_u", "inverse": "rel_l2_a"}


def run(problem: str, direction: str, equireg: bool, steps: int, split: str, n: int, zeta: float,
        alpha: float | None = None, residual_weight: float | None = None) -> dict[int, dict]:
    """One config on one split; ``residual_weight`` adds PDE-residual guidance (DiffusionPDE's term)."""
    name = f"{problem}64_{direction}_{'dps_equireg' if equireg else 'dps'}"
    extra, tag = [], ""
    if residual_weight is not None:
        spec = {"class_path": "equireg_lit.pde.PDEResidual", "init_args": {"problem": problem, "weight": residual_weight}}
        extra, tag = ["--model.init_args.pde_residual", json.dumps(spec)], f"_r{residual_weight}"
    root = RUNS_DIR / split / f"{name}_s{steps}_z{zeta}_a{alpha}{tag}"
    return predict_metrics(name, root, steps, split, n, zeta, alpha if equireg else None, extra)


def solved_u_error(problem: str, direction: str, steps: int, n: int, zeta: float) -> list[float] | None:
    """Forward problem: rel. L2 of u obtained by *solving the PDE* from DPS's reconstructed a, per
    test sample. Tells the two error sources apart: the recovered coefficient vs the prior's
    (a, u) coupling (when this is far below DPS's own u error, the joint prior is the weak link)."""
    if direction != "forward":
        return None
    from safetensors.torch import load_file

    from equireg_lit.datamodules import PDEDataModule
    from equireg_lit.pde import relative_l2, solve_darcy, solve_helmholtz
    from equireg_lit.pde.data import PARAMS, darcy_binarize

    dm = PDEDataModule(problem=problem)
    dm.setup()
    samples = RUNS_DIR / "test" / f"{problem}64_{direction}_dps_s{steps}_z{zeta}_aNone" / "predictions" / "samples"
    out = []
    for i in range(n):
        f = load_file(str(samples / f"{i:05d}.safetensors"))
        r, t = (dm.denormalize(f[k][None]).double()[0] for k in ("reconstruction", "truth"))
        if problem == "darcy":
            u = solve_darcy(darcy_binarize(r[0])[None])[0]
        else:
            u = solve_helmholtz(r[0][None], PARAMS[problem].get("k", 0.0))[0]
        out.append(float(relative_l2(u[None, None], t[1][None, None])))
    return out


def tune(a: argparse.Namespace) -> None:
    key = TARGET[a.direction]
    out: dict = {"problem": a.problem, "direction": a.direction, "steps": a.steps, "n": a.n, "metric": key,
                 "dps": {}, "equireg": {}}
    for z in a.zetas:
        out["dps"][str(z)] = mean_se([r[key] for r in run(a.problem, a.direction, False, a.steps, "val", a.n, z).values()])
    best_z = min(a.zetas, key=lambda z: out["dps"][str(z)][0])
    for al in a.alphas:
        m = run(a.problem, a.direction, True, a.steps, "val", a.n, best_z, al)
        out["equireg"][str(al)] = mean_se([r[key] for r in m.values()])
    out.update(best_zeta=best_z, best_alpha=min(a.alphas, key=lambda al: out["equireg"][str(al)][0]), machine=machine())
    if a.residual_weights:  # DPS + PDE residual (no EquiReg) at the best zeta
        out["residual"] = {str(w): mean_se([r[key] for r in run(a.problem, a.direction, False, a.steps, "val", a.n, best_z,
                                                                  residual_weight=w).values()]) for w in a.residual_weights}
        out["best_residual_weight"] = min(a.residual_weights, key=lambda w: out["residual"][str(w)][0])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"pde_tune_{a.problem}_{a.direction}_s{a.steps}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


def compare(a: argparse.Namespace) -> None:
    rows = []
    for direction in ("forward", "inverse"):
        t = json.loads((RESULTS / f"pde_tune_{a.problem}_{direction}_s{a.tune_steps}.json").read_text())
        for steps in a.steps:
            base = run(a.problem, direction, False, steps, "test", a.n, t["best_zeta"])
            reg = run(a.problem, direction, True, steps, "test", a.n, t["best_zeta"], t["best_alpha"])
            keys = [k for k in ("rel_l2_a", "rel_l2_u", "error_rate_a") if k in next(iter(base.values()))]
            rows.append({"problem": a.problem, "direction": direction, "steps": steps, "zeta": t["best_zeta"],
                         "alpha": t["best_alpha"], "n": len(base),
                         "dps": {k: mean_se([r[k] for r in base.values()]) for k in keys},
                         "equireg": {k: mean_se([r[k] for r in reg.values()]) for k in keys},
                         "diff": {k: paired(base, reg, k) for k in keys}})
            solved = solved_u_error(a.problem, direction, steps, a.n, t["best_zeta"])
            if solved is not None:
                rows[-1]["u_solved_from_dps_a"] = mean_se(solved)
            if t.get("best_residual_weight") is not None:
                w = t["best_residual_weight"]
                res = run(a.problem, direction, False, steps, "test", a.n, t["best_zeta"], residual_weight=w)
                rows[-1].update(residual_weight=w, residual={k: mean_se([r[k] for r in res.values()]) for k in keys},
                                diff_residual={k: paired(base, res, k) for k in keys})
            print(json.dumps(rows[-1], indent=2), flush=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stem = OUT_DIR / f"pde_compare_{a.problem}"
    stem.with_suffix(".json").write_text(json.dumps({"rows": rows, "machine": machine()}, indent=2) + "\n")
    lines = ["| problem | direction | steps | target | DPS rel. L2 | DPS+EquiReg rel. L2 | Δ [95% CI] | Darcy a error rate DPS / EquiReg "
             "| DPS+residual rel. L2 (weight) | Δ residual [95% CI] |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        k = TARGET[r["direction"]]
        d = r["diff"][k]
        er = (f"{r['dps']['error_rate_a'][0]:.3f} / {r['equireg']['error_rate_a'][0]:.3f}"
              if "error_rate_a" in r["dps"] else "n/a")
        lines.append(f"| {r['problem']} | {r['direction']} | {r['steps']} | {k} | {100 * r['dps'][k][0]:.2f} % ± {100 * r['dps'][k][1]:.2f} | "
                     f"{100 * r['equireg'][k][0]:.2f} % ± {100 * r['equireg'][k][1]:.2f} | "
                     f"{100 * d['mean_diff']:+.2f} [{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}] | {er} | "
                     + (f"{100 * r['residual'][k][0]:.2f} % ({r['residual_weight']}) | "
                        f"{100 * r['diff_residual'][k]['mean_diff']:+.2f} [{100 * r['diff_residual'][k]['ci95'][0]:+.2f}, "
                        f"{100 * r['diff_residual'][k]['ci95'][1]:+.2f}] |" if "residual" in r else "not run | — |"))
    solved = [f"{r['steps']} steps: {100 * r['u_solved_from_dps_a'][0]:.2f} % ± {100 * r['u_solved_from_dps_a'][1]:.2f}"
              for r in rows if "u_solved_from_dps_a" in r]
    note = ("\n\nForward problem, u obtained by solving the PDE from DPS's reconstructed a (rel. L2): "
            + "; ".join(solved) + "." if solved else "")
    stem.with_suffix(".md").write_text("\n".join(lines) + note + f"\n\nn = {rows[0]['n']} test samples; machine: {machine()}\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tune")
    t.add_argument("--problem", default="darcy")
    t.add_argument("--direction", choices=["forward", "inverse"], required=True)
    t.add_argument("--steps", type=int, default=50)
    t.add_argument("--n", type=int, default=20)
    t.add_argument("--zetas", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    t.add_argument("--alphas", type=float, nargs="+", default=[0.1, 1.0])
    t.add_argument("--residual-weights", type=float, nargs="*", default=[],
                   help="PDE-residual guidance weights to try for DPS + residual (none: skip)")
    c = sub.add_parser("compare")
    c.add_argument("--problem", default="darcy")
    c.add_argument("--steps", type=int, nargs="+", default=[50, 200])
    c.add_argument("--tune-steps", type=int, default=50)
    c.add_argument("--n", type=int, default=100)
    p.add_argument("--out", default="", help="subfolder of benchmarks/results for comparisons (quick suite: quick)")
    p.add_argument("--runs", default="runs/bench_pde", help="folder of the per-sample predict outputs")
    a = p.parse_args()
    global OUT_DIR, RUNS_DIR
    OUT_DIR, RUNS_DIR = RESULTS / a.out, REPO / a.runs
    tune(a) if a.cmd == "tune" else compare(a)


if __name__ == "__main__":
    main()
