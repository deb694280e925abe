"""Our PDE reconstructions next to the published FunDPS and DiffusionPDE numbers.

One table: per problem and direction, the relative L2 error of plain DPS and of the best method
of our study (lowest mean on the 100 test samples, at the largest step count that ran) with the
resolution, observation count, steps and training-set size of each, next to FunDPS (arXiv
2505.17004, 500 steps) and DiffusionPDE (arXiv 2406.17763, 2000 steps), both at 128x128 from 500
observed points per channel, on their shared 50,000-pair training sets. Our numbers come from the
current cells of ``{problem}64_reconstruction`` (``python -m benchmarks run ...``); nothing is
rerun here.

    python -m benchmarks.pde_reference
"""

from __future__ import annotations

import json

import yaml

from benchmarks.report import cell_rows, table_script
from benchmarks.stats import mean_se
from benchmarks.study import REPO, StudyError, load

# Relative L2 in %, forward / inverse (../shared/DESIGN.md §4 quotes them from the papers' tables).
REFERENCES = {
    "darcy": {"FunDPS": (2.49, 5.18), "DiffusionPDE": (6.07, 7.87)},
    "helmholtz": {"FunDPS": (2.13, 17.16), "DiffusionPDE": (12.64, 19.07)},
    "navier_stokes": {"FunDPS": (3.32, 8.48), "DiffusionPDE": (3.78, 9.63)},
}
REFERENCE_SETUP = {"FunDPS": "128x128, 500 points (3 %), 500 steps, 50k pairs",
                   "DiffusionPDE": "128x128, 500 points (3 %), 2000 steps, 50k pairs"}
DIRECTIONS = ("forward", "inverse")


def prior_setup(problem: str) -> str:
    """Training pairs, optimizer steps and parameters of the shipped prior, from its provenance."""
    path = REPO / "equireg_lit" / "weights" / f"{problem}64.json"
    if not path.is_file():
        return "no shipped prior"
    prov = json.loads(path.read_text())
    num_train = yaml.safe_load(prov["config_yaml"])["data"]["init_args"]["num_train"]
    return (f"{num_train} pairs, {prov['global_steps']} optimizer steps, "
            f"{prov['parameters'] / 1e6:.1f} M parameters")


def our_rows(problem: str) -> dict[str, dict]:
    """Per direction: plain DPS and the best method at the largest step count with all cells run."""
    try:
        study = load(f"{problem}64_reconstruction")
    except StudyError:
        return {}
    out: dict[str, dict] = {}
    for direction in DIRECTIONS:
        metric = study.metric_for(direction)
        for steps in sorted(study.steps, reverse=True):
            cells = [c for c in study.test_cells() if c.task == direction and c.steps == steps]
            rows = {c.method: cell_rows(c) for c in cells}
            if not cells or any(r is None for r in rows.values()):
                continue
            means = {m: mean_se([x[metric] for x in r.values()]) for m, r in rows.items()}
            best = min(means, key=lambda m: means[m][0])
            solved = [x.get("rel_l2_u_solved") for x in rows[study.baseline].values()]
            out[direction] = {"steps": steps, "n": len(rows[study.baseline]), "dps": means[study.baseline],
                              "solved": mean_se(solved) if direction == "forward" and None not in solved else None,
                              "best": best, "best_value": means[best], "devices": sorted(
                                  {x["device"] for r in rows.values() for x in r.values()})}
            break
    return out


def table() -> str:
    lines = ["| problem | direction | ours: DPS | ours: best (method) | ours: u solved from DPS's a | ours: setup | "
             "FunDPS | DiffusionPDE | gap to FunDPS |", "|---|---|---|---|---|---|---|---|---|"]
    devices: set[str] = set()
    for problem, refs in REFERENCES.items():
        ours = our_rows(problem)
        for k, direction in enumerate(DIRECTIONS):
            fun, dpde = refs["FunDPS"][k], refs["DiffusionPDE"][k]
            o = ours.get(direction)
            if o is None:
                cols = ["not run", "—", "—", "—", "—"]
            else:
                devices |= set(o["devices"])
                dps, best = 100 * o["dps"][0], 100 * o["best_value"][0]
                setup = (f"64x64, 123 points (3 %), {o['steps']} steps, n {o['n']}; {prior_setup(problem)}")
                solved = "—" if o["solved"] is None else f"{100 * o['solved'][0]:.1f} %"
                cols = [f"{dps:.1f} %", f"{best:.1f} % ({o['best']})", solved, setup, f"{best / fun:.0f}x"]
            lines.append(f"| {problem} | {direction} | {' | '.join(cols[:4])} | {fun:.2f} % | {dpde:.2f} % | {cols[4]} |")
    lines += ["", "Reference setups: " + "; ".join(f"{k}: {v}" for k, v in REFERENCE_SETUP.items()) + ". "
              "Ours: relative L2 in physical units on 100 test samples (mean); *u solved from DPS's a*: "
              "the forward problem's u obtained by solving the PDE from the coefficient the same DPS runs "
              "reconstructed (a diagnostic of the prior's learned a-u coupling, not a method); devices: "
              + (", ".join(sorted(devices)) or "none") + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    table_script(__doc__, "pde_reference.md", table)


if __name__ == "__main__":
    main()
