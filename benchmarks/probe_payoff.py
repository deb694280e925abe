"""Does the probe selection report predict EquiReg's payoff?

For every candidate f of a selection config, three kinds of score against the gain it brings when
used as EquiReg's f in DPS (the paired test PSNR difference of the payoff study,
``benchmarks/studies/<dataset>_probe_payoff.yaml``):

* the selection report's scores (AUROC and effect size d of the equivariance error, held-out data
  vs DPS's early / mid / late clean estimates; ``selection.json``);
* **gradient alignment**, measured here on validation samples only: along real DPS trajectories of
  the payoff study's tasks (its tuned zeta, 50 steps), the cosine between the penalty's gradient at
  the clean estimate and that estimate's error, ``cos(grad R(x0_hat), x0_hat - x)``. Positive means
  a descent step on the penalty moves the estimate towards the truth, which is what the penalty is
  for; a function that separates data from estimates can still push in a useless direction.

Spearman rank correlations (with their p-values; 8 candidates, so only strong ones mean much).

    python -m benchmarks.probe_payoff [--dataset mnist32] [--n 32]

Writes ``benchmarks/results/probe_payoff/<dataset>.{json,md}`` (``--quick``: under ``results/quick/``).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch
import yaml

from benchmarks.runner import RESULTS, study_dir, tuned_value
from benchmarks.stats import device_name, machine, paired
from benchmarks.study import CONFIGS, load, task_operator
from equireg_lit.utils.io import atomic_write_text

STAGES = {"early": 0.1, "mid": 0.5, "late": 0.9}  # fractions of the run, as the probe sets record them
SELECTION_SCORES = [f"{kind}/off_eval_dps_{stage}" for kind in ("auroc", "d") for stage in STAGES]


def payoff_name(candidate: str) -> str:
    """The payoff study's method name of a selection candidate (the default group's suffix dropped)."""
    return candidate.removesuffix("_hflip")


def load_candidates(select_config: Path, prior) -> dict:
    """The selection config's candidates as EquiReg modules, denoisers bound to ``prior``."""
    from jsonargparse import ArgumentParser

    from equireg_lit.regularizer import EquiReg, PriorDenoiser

    blocks = yaml.safe_load(select_config.read_text())["model"]["init_args"]["candidates"]
    parser = ArgumentParser()
    parser.add_argument("--reg", type=EquiReg)
    out = {}
    for name, block in blocks.items():
        torch.manual_seed(0)  # an untrained control gets a fixed initialization
        reg = parser.instantiate(parser.parse_object({"reg": block})).reg
        if isinstance(reg.f, PriorDenoiser) and reg.f.own_prior is None:
            reg.f.bind(prior)
        out[name] = reg.eval().requires_grad_(False)
    return out


def trajectory_estimates(prior, dataset: str, task: str, steps: int, n: int) -> tuple[torch.Tensor, dict]:
    """``n`` validation samples and DPS's clean estimates of them at each stage (tuned zeta)."""
    from equireg_lit.physics import simulate
    from equireg_lit.rng import trajectory_generators
    from equireg_lit.solvers import DPS, Guidance

    from equireg_lit.probes.sets import dataset_splits

    x = dataset_splits(dataset)["val"][:n]  # the probe sets' own data, validation split
    op = task_operator(task, dataset)
    gens = trajectory_generators(0, 0, n)
    y = simulate(op, x, gens)
    record = {int(frac * steps): stage for stage, frac in STAGES.items()}
    est: dict[str, torch.Tensor] = {}

    def on_step(i: int, total: int, x0: torch.Tensor) -> None:
        if i in record:
            est[record[i]] = x0.detach().clone()

    zeta = float(tuned_value(dataset, f"{task}_s{steps}", "solver.zeta"))
    DPS(num_steps=steps, zeta=zeta).sample(prior, tuple(x.shape), gens, Guidance(op, y), on_step=on_step)
    return x, est


def alignment(reg, x0: torch.Tensor, x: torch.Tensor) -> float:
    """Mean over samples of ``cos(grad R(x0), x0 - x)`` (R averaged over the whole group)."""
    x0 = x0.clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(reg.mean_penalty(x0).sum(), x0)
    cos = torch.nn.functional.cosine_similarity(grad.flatten(1), (x0 - x).detach().flatten(1), dim=1, eps=1e-12)
    return float(cos.mean())


def measured_payoff(dataset: str, quick: bool = False) -> dict[str, dict[str, tuple[float, float, float]]]:
    """``{task: {method: (mean, lo, hi)}}``: paired metric difference to the baseline on the test cells."""
    study = load(f"{dataset}_probe_payoff")
    path = study_dir(study.name, quick) / "samples.csv"
    if not path.is_file():
        flag = " --quick" if quick else ""
        raise SystemExit(f"{path} does not exist: run `python -m benchmarks run {study.name}{flag}` first")
    tasks = study.quick.get("tasks", study.tasks) if quick else study.tasks
    n = study.quick.get("n", study.n) if quick else study.n
    rows = list(csv.DictReader(open(path, newline="")))
    out: dict[str, dict] = {}
    for task in tasks:
        key = study.metric_for(task)
        by_method: dict[str, dict[int, dict]] = {}
        for r in rows:
            if r["split"] == "test" and r["task"] == task:
                by_method.setdefault(r["method"], {})[int(r["index"])] = {key: float(r[key])}
        base = by_method.get(study.baseline, {})
        for m, vals in by_method.items():
            d = paired(base, vals, key)
            if m != study.baseline and d["n"] >= n:  # whole cells only
                out.setdefault(task, {})[m] = (d["mean_diff"], *d["ci95"])
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist32")
    p.add_argument("--n", type=int, default=32, help="validation samples per task for gradient alignment")
    p.add_argument("--quick", action="store_true", help="the payoff study's quick cells (results under benchmarks/results/quick/)")
    args = p.parse_args(argv)
    torch.set_grad_enabled(False)
    from scipy.stats import spearmanr

    from equireg_lit.diffusion.priors import DiffusersUNetPrior

    study = load(f"{args.dataset}_probe_payoff")
    steps = study.steps[0]
    selection = {payoff_name(r["candidate"]): r for r in json.loads(
        (RESULTS / "probe_selection" / ("" if args.dataset == "mnist32" else args.dataset) / "selection.json").read_text())}
    prior = DiffusersUNetPrior(weights=args.dataset).eval()
    regs = {payoff_name(k): v for k, v in load_candidates(CONFIGS / "test" / f"select_{args.dataset}.yaml", prior).items()}
    payoff = measured_payoff(args.dataset, args.quick)
    tasks = list(payoff)

    align: dict[str, dict[str, dict[str, float]]] = {}
    for task in tasks:
        x, est = trajectory_estimates(prior, args.dataset, task, steps, args.n)
        align[task] = {name: {s: alignment(reg, est[s], x) for s in STAGES} for name, reg in regs.items()}

    result = {"dataset": args.dataset, "steps": steps, "n_alignment": args.n, "machine": machine(),
              "device": device_name(), "tasks": {}}
    lines = [f"Candidates: the selection report's (`configs/test/select_{args.dataset}.yaml`). Gain: paired test "
             f"PSNR difference to DPS at {steps} steps (the test cells of `{study.name}`, alpha tuned per candidate on "
             f"validation; `python -m benchmarks run {study.name}`). Alignment: cos(grad R(x0_hat), x0_hat - x) "
             f"on {args.n} validation samples' DPS trajectories of the same task.", ""]
    for task in tasks:
        names = [n for n in regs if n in payoff.get(task, {})]
        gains = [payoff[task][n][0] for n in names]
        scores = {s: [float(selection[n][s]) for n in names] for s in SELECTION_SCORES}
        scores |= {f"align/{s}": [align[task][n][s] for n in names] for s in STAGES}
        rho = {}
        for s, v in scores.items():
            r, pval = spearmanr(v, gains)
            rho[s] = (float(r), float(pval))
        result["tasks"][task] = {"candidates": {n: {"gain": payoff[task][n], **{s: scores[s][i] for s in scores}}
                                                for i, n in enumerate(names)}, "spearman": rho}
        lines += [f"**{task}** ({len(names)} candidates)", "",
                  "| candidate | gain (dB) [95% CI] | " + " | ".join(scores) + " |",
                  "|---|---|" + "---|" * len(scores)]
        for i, n in sorted(enumerate(names), key=lambda t: -gains[t[0]]):
            m, lo, hi = payoff[task][n]
            lines.append(f"| {n} | {m:+.2f} [{lo:+.2f}, {hi:+.2f}] | " + " | ".join(f"{scores[s][i]:.3f}" for s in scores) + " |")
        lines.append("| **Spearman rho with the gain (p)** | | " + " | ".join(
            f"**{rho[s][0]:+.2f}** ({rho[s][1]:.2f})" for s in scores) + " |")
        lines.append("")
    lines.append(f"Machine: {machine()}. Command: `python -m benchmarks.probe_payoff --dataset {args.dataset}`")
    out = RESULTS / "quick" / "probe_payoff" if args.quick else RESULTS / "probe_payoff"  # quick: never published
    atomic_write_text(out / f"{args.dataset}.json", json.dumps(result, indent=1))
    atomic_write_text(out / f"{args.dataset}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
