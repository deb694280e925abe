"""Weights: the registry of shipped weights (the files in this folder) and the one place that
resolves a name or path, loads safely (safetensors or ``torch.load(weights_only=True)``, strict,
with errors naming the file) and saves with provenance."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from equireg_lit.errors import DataError
from equireg_lit.utils.io import atomic_write, atomic_write_json, read_safetensors

SHIPPED_DIR = Path(__file__).resolve().parent


def resolve_weights(weights: str) -> tuple[Path, dict | None]:
    """Map a short name (a file shipped in ``equireg_lit/weights``) or a path to a file.

    Returns the path and the provenance record stored next to shipped weights (None for paths).
    """
    shipped = SHIPPED_DIR / f"{weights}.safetensors"
    if "/" not in weights and "." not in weights:
        if not shipped.is_file():
            names = sorted(p.stem for p in SHIPPED_DIR.glob("*.safetensors"))
            raise DataError(
                f"no shipped weights named {weights!r}; shipped: {names or 'none'}. "
                "Pass a path to a .safetensors/.pt file or a diffusers directory instead."
            )
        meta = SHIPPED_DIR / f"{weights}.json"
        return shipped, (json.loads(meta.read_text()) if meta.is_file() else None)
    path = Path(weights).expanduser()
    if not path.exists():
        raise DataError(f"weights not found: {path}")
    return path, None


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or a torch file with ``weights_only=True``.

    Lightning checkpoints (``{"state_dict": ...}``) and EMA exports are unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path, "weights file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refused or corrupt file
        raise DataError(
            f"could not load {path} safely with torch.load(weights_only=True): {err}. "
            "Convert it to .safetensors or a plain state dict."
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"{path} does not hold a state dict of tensors")
    return obj


def load_checked(module: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """``load_state_dict(strict=True)`` with an error that lists missing, unexpected and
    mis-shaped keys and names the file, instead of PyTorch's wall of text."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: expected {tuple(expected[k].shape)}, found {tuple(state[k].shape)}"
        for k in expected
        if k in state and expected[k].shape != state[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [f"checkpoint {source} does not match {type(module).__name__}"]
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches, e.g. " + "; ".join(shapes[:5]))
        if missing:
            parts.append(f"{len(missing)} missing keys, e.g. {missing[:5]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:5]}")
        parts.append("check that the architecture settings match the ones the weights were trained with")
        raise DataError(". ".join(parts))
    module.load_state_dict(state, strict=True)


def save_weights(module: nn.Module, path: str | Path, provenance: dict) -> None:
    """Export ``module``'s weights as safetensors with a provenance JSON next to them (atomically)."""
    from safetensors.torch import save_file

    import equireg_lit

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    atomic_write(path, lambda p: save_file(state, str(p)))
    atomic_write_json(path.with_suffix(".json"), {**provenance, "package_version": equireg_lit.__version__})


def prior_provenance(net: nn.Module, hparams: dict, **fields) -> dict:
    """Provenance of exported prior weights: architecture, schedule and size from ``net``,
    training facts from ``fields`` (epochs, steps, validation loss, config, ...)."""
    return {
        "kind": type(net).__name__,
        "architecture": getattr(net, "architecture", None),
        "noise_schedule": net.schedule.name,
        "num_train_timesteps": net.schedule.num_train_timesteps,
        "parameters": sum(p.numel() for p in getattr(net, "net", net).parameters()),
        "hparams": hparams,
        "seed": hparams.get("seed", 0),
        **fields,
        "torch_version": torch.__version__,
    }


def state_sha256(module: nn.Module) -> str:
    """SHA-256 over a module's state dict (names and raw bytes): identifies the weights in use."""
    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def export_training_snapshot(ckpt_path: str | Path, out_dir: str | Path) -> dict:
    """Split a ``ScoreModule`` Lightning checkpoint into ``net.safetensors`` (the trained network),
    ``ema.safetensors`` (its EMA) and ``snapshot.json`` (epoch, step): small files a run continues
    from (``weights:`` of the prior and ``ema_weights:`` of ``ScoreModule``) when the full checkpoint,
    with its optimizer state, is too large to keep."""
    from safetensors.torch import save_file

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, prefix in (("net", "prior.net."), ("ema", "ema.net.")):
        part = {k[len(prefix):]: v.contiguous() for k, v in state.items() if k.startswith(prefix)}
        if not part:
            raise DataError(f"{ckpt_path} has no '{prefix}*' weights; is it a ScoreModule checkpoint?")
        atomic_write(out / f"{name}.safetensors", lambda p, part=part: save_file(part, str(p)))
    meta = {"source": str(ckpt_path), "epoch": int(ckpt["epoch"]), "global_step": int(ckpt["global_step"]),
            "hyper_parameters": {k: v for k, v in ckpt.get("hyper_parameters", {}).items() if not k.startswith("_")}}
    atomic_write_json(out / "snapshot.json", meta)
    return meta


def latest_scalar(logdir: str | Path, tag: str, max_step: int | None = None) -> tuple[int, float] | None:
    """The latest ``(step, value)`` of a TensorBoard scalar under ``logdir`` (every run version)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    latest = None
    for events in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0}).Reload()
        if tag not in acc.Tags().get("scalars", []):
            continue
        for s in acc.Scalars(tag):
            if (max_step is None or s.step <= max_step) and (latest is None or s.step > latest[0]):
                latest = (int(s.step), float(s.value))
    return latest


def training_wall_time(logdir: str | Path, max_step: int | None = None) -> float:
    """Seconds of training logged under ``logdir``: per run version (one per session), the span of
    its ``train/loss`` events up to ``max_step``, summed."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    total = 0.0
    for events in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0}).Reload()
        times = [s.wall_time for s in acc.Scalars("train/loss") if max_step is None or s.step <= max_step] \
            if "train/loss" in acc.Tags().get("scalars", []) else []
        total += max(times) - min(times) if times else 0.0
    return total


def ship_training_snapshot(ckpt_path: str | Path, out_path: str | Path, fit_config: str | Path,
                           logdir: str | Path | None = None) -> dict:
    """Shipped prior weights from a ``ScoreModule`` checkpoint of a run that is still training: the
    EMA network as ``out_path`` (safetensors) with a provenance JSON (architecture and schedule from
    the fit config's prior, epoch and step from the checkpoint, the latest EMA validation loss from
    the run's TensorBoard logs), marked ``status: training snapshot``."""
    import yaml

    from equireg_lit.diffusion.priors import DiffusersUNetPrior

    config_text = Path(fit_config).read_text()
    args = dict(yaml.safe_load(config_text)["model"]["init_args"]["prior"]["init_args"])
    args.update(weights=None, random_init=True)  # the architecture; the weights come from the checkpoint
    prior = DiffusersUNetPrior(**args)
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    ema = {k[len("ema.net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("ema.net.")}
    if not ema:
        raise DataError(f"{ckpt_path} has no 'ema.net.*' weights; is it a ScoreModule checkpoint?")
    load_checked(prior.net, ema, ckpt_path)
    val = latest_scalar(logdir, "val/loss", int(ckpt["global_step"])) if logdir else None
    hparams = {k: v for k, v in ckpt.get("hyper_parameters", {}).items() if not k.startswith("_")}
    prov = prior_provenance(prior, hparams, status="training snapshot (the run continues; see config_yaml)",
                            epochs=int(ckpt["epoch"]), global_steps=int(ckpt["global_step"]),
                            final_val_loss_ema=None if val is None else val[1],
                            val_loss_step=None if val is None else val[0],
                            wall_time_seconds=round(training_wall_time(logdir, int(ckpt["global_step"])), 1) if logdir else None,
                            source_checkpoint=str(ckpt_path), config_yaml=config_text)
    save_weights(prior.net, out_path, prov)
    return prov
