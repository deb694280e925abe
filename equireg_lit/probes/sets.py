"""On- and off-manifold sample sets for training and selecting probes (MNIST digits, natural32
patches, or normalized PDE fields (a, u); "digits" below means any of them).

on-manifold:  held-out digits (val / test splits), training digits, and prior samples.
off-manifold: (a) DPS clean estimates x0_hat along real 50-step trajectories for measurements of
              train-split digits (box inpainting and SR x4; PDE fields: the forward and inverse
              sparse-observation problems), at early / middle / late steps;
              (b) digits plus Gaussian noise; (c) blurred and pixel-masked digits;
              (d) averages of two digits.
Sets used to train probes ("train") and to select them ("eval") come from disjoint digits.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import Tensor

from equireg_lit.data.mnist import mnist32, split_indices
from equireg_lit.diffusion.priors import DiffusersUNetPrior
from equireg_lit.physics import BoxInpainting, GaussianBlur, SparsePoints, SuperResolution, simulate
from equireg_lit.rng import draw_generators, trajectory_generators
from equireg_lit.solvers import DPS, Guidance
from equireg_lit.utils.io import cached_tensors
from equireg_lit.weights import resolve_weights

SETS_VERSION = 1  # MNIST sets; other data sets record version 2 (validation-only selection)
STAGES = {"early": 0.1, "mid": 0.5, "late": 0.9}


PDE_DATASETS = {"darcy64": "darcy", "helmholtz64": "helmholtz"}


def trajectory_tasks(dataset: str) -> list[str]:
    return ["forward", "inverse"] if dataset in PDE_DATASETS else ["box_inpainting", "sr4"]


def trajectory_operator(task: str, shape: tuple[int, ...]):
    """The operator whose DPS trajectories give off-manifold estimates (``shape``: ``[C, H, W]``)."""
    if task in ("forward", "inverse"):  # as configs/task/<pde>/<task>.yaml: 3 % of a (forward) or u
        return SparsePoints(img_size=tuple(shape), channel=0 if task == "forward" else 1, fraction=0.03, seed=0)
    return BoxInpainting() if task == "box_inpainting" else SuperResolution(factor=4)


def _trajectory_estimates(prior, x: Tensor, task: str, steps: int, zeta: float, seed: int, batch: int = 50) -> dict[str, Tensor]:
    op = trajectory_operator(task, tuple(x.shape[1:]))
    record_at = {int(frac * steps): name for name, frac in STAGES.items()}
    out: dict[str, list[Tensor]] = {name: [] for name in STAGES}
    for start in range(0, x.shape[0], batch):
        xb = x[start : start + batch]
        gens = trajectory_generators(seed, start, xb.shape[0])
        y = simulate(op, xb, gens)

        def on_step(i: int, n: int, x0: Tensor) -> None:
            if i in record_at:
                out[record_at[i]].append(x0.clone())

        DPS(num_steps=steps, zeta=zeta).sample(prior, tuple(xb.shape), gens, Guidance(op, y), on_step=on_step)
    return {k: torch.cat(v) for k, v in out.items()}


def _perturbations(x: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
    n = x.shape[0]
    sigmas = torch.tensor([0.1, 0.2, 0.4])[torch.randint(3, (n,), generator=generator)].view(-1, 1, 1, 1)
    noisy = x + sigmas * torch.randn(x.shape, generator=generator)
    blurred = GaussianBlur(sigma=1.5, kernel_size=9).A(x)
    keep = torch.rand(x.shape, generator=generator) > 0.3
    masked = torch.where(keep, x, torch.full_like(x, -1.0))
    perm = torch.randperm(n, generator=generator)
    interp = 0.5 * (x + x[perm])
    return {"noise": noisy, "blur": blurred, "masked": masked, "interp": interp}


def dataset_splits(dataset: str) -> dict[str, Tensor]:
    """``train`` / ``val`` / ``test`` images in [-1, 1] of a probe data set (``mnist32``, ``natural32``)."""
    if dataset == "mnist32":
        images, _ = mnist32()
        return {s: images[split_indices(s)] for s in ("train", "val", "test")}
    if dataset == "natural32":
        from equireg_lit.data.natural import natural32

        data = natural32()
        return {s: data[s] for s in ("train", "val", "test")}
    if dataset in PDE_DATASETS:  # the shipped 1,000-pair priors' data, normalized as they were trained
        from equireg_lit.pde.data import load_pde_splits

        data = load_pde_splits(PDE_DATASETS[dataset])
        mean, std = data["mean"].view(1, -1, 1, 1), data["std"].view(1, -1, 1, 1)
        return {s: (data[s] - mean) / std for s in ("train", "val", "test")}
    raise ValueError(f"unknown probe data set {dataset!r}; valid: mnist32, natural32, {', '.join(PDE_DATASETS)}")


def probe_set_provenance(prior_weights: str, steps: int, zeta: float, num_traj_train: int, num_traj_eval: int,
                         num_on_train: int, num_prior_samples: int, seed: int, dataset: str = "mnist32") -> dict:
    path, _ = resolve_weights(prior_weights)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else str(path)
    # MNIST sets predate the dataset key: leaving it out keeps their cache valid.
    return ({} if dataset == "mnist32" else {"dataset": dataset, "selection_split": "val"}) | {
        "version": SETS_VERSION, "prior_weights": prior_weights, "prior_sha256_16": digest, "steps": steps,
        "zeta": zeta, "num_traj_train": num_traj_train, "num_traj_eval": num_traj_eval,
        "num_on_train": num_on_train, "num_prior_samples": num_prior_samples, "seed": seed,
        "tasks": trajectory_tasks(dataset), "stages": STAGES,
    }


def build_probe_sets(prov: dict, progress: bool = True, pieces_dir: str | Path | None = None) -> dict[str, Tensor]:
    """Generate every set named in the module docstring (deterministic given ``prov``).

    ``pieces_dir``: keep each expensive piece (the prior samples, each part's and task's DPS
    trajectories) there as it finishes, keyed by ``prov``, so a build that is stopped or killed
    resumes from its finished pieces (a PDE build is about an hour on a CPU). Every piece draws
    from its own generators, so pieces give the same sets as one uninterrupted build."""

    def piece(name: str, build) -> dict[str, Tensor]:
        if pieces_dir is None:
            return build()
        return cached_tensors(pieces_dir, "probe_piece", prov | {"piece": name}, build)

    torch.manual_seed(prov["seed"])
    prior = DiffusersUNetPrior(weights=prov["prior_weights"]).eval().requires_grad_(False)
    dataset = prov.get("dataset", "mnist32")
    splits = dataset_splits(dataset)
    train = splits["train"]
    sets: dict[str, Tensor] = {
        "on_train": train[: prov["num_on_train"]],
        "on_val": splits["val"][:500],
        "on_test": splits["test"][:500],
    }
    gens = draw_generators(prov["seed"], 0, prov["num_prior_samples"])
    sets["on_prior"] = piece("on_prior", lambda: {"x": DPS(num_steps=prov["steps"], eta=0.0).sample(
        prior, (len(gens), *train.shape[1:]), gens).x.contiguous()})["x"]
    if dataset == "mnist32":
        # Trajectory digits: train[0:a] for probe training, train[3000:3000+b] held out for selection,
        # whose on-manifold reference is the test digits (digits are alike; the report predates the rule below).
        parts = {"train": train[: prov["num_traj_train"]], "eval": train[3000 : 3000 + prov["num_traj_eval"]]}
    else:
        # Selection is tuning, so it sees validation samples only: its on-manifold reference
        # (``on_eval``), the DPS estimates of the first of those same samples and their perturbations.
        # Natural patches differ by source image (a grass texture is not a cat), so estimates and
        # reference must come from the same images, or the report measures image content.
        sets["on_eval"] = sets["on_val"].clone()  # its own storage: safetensors refuses shared tensors
        parts = {"train": train[: prov["num_traj_train"]], "eval": sets["on_eval"][: prov["num_traj_eval"]]}
    for part, x in parts.items():
        per_stage: dict[str, list[Tensor]] = {k: [] for k in STAGES}
        for task in prov["tasks"]:
            if progress:
                print(f"probe sets: DPS trajectories, {task}, {part} ({x.shape[0]} samples)", flush=True)
            est = piece(f"dps_{part}_{task}", lambda: {k: v.contiguous() for k, v in _trajectory_estimates(
                prior, x, task, prov["steps"], prov["zeta"], prov["seed"]).items()})
            for k, v in est.items():
                per_stage[k].append(v)
        for k, v in per_stage.items():
            sets[f"off_{part}_dps_{k}"] = torch.cat(v)
    g = torch.Generator().manual_seed(prov["seed"] + 1)
    for part, x in (("train", sets["on_train"]), ("eval", sets.get("on_eval", sets["on_test"]))):
        for k, v in _perturbations(x, g).items():
            sets[f"off_{part}_{k}"] = v
    return {k: v.float().contiguous() for k, v in sets.items()}


def load_or_build_probe_sets(cache_dir: str | Path, prov: dict, progress: bool = True) -> dict[str, Tensor]:
    """Cached sets keyed by their provenance; rebuilt when the provenance changes (resuming from the
    pieces an interrupted build left in ``<cache_dir>/pieces``, which go once the sets are written)."""
    pieces = Path(cache_dir) / "pieces"
    sets = cached_tensors(cache_dir, "probe_sets", prov, lambda: build_probe_sets(prov, progress, pieces))
    for meta in pieces.glob("probe_piece_*.json") if pieces.is_dir() else []:
        if {k: v for k, v in json.loads(meta.read_text()).items() if k != "piece"} == json.loads(json.dumps(prov)):
            meta.with_suffix(".safetensors").unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
    if pieces.is_dir() and not any(pieces.iterdir()):
        pieces.rmdir()
    return sets
