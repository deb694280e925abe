"""Atomic file writes, safe safetensors reading, the run config and provenance-keyed caches."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` atomically: ``write`` fills a temporary file that is then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def run_config_text(log_dir: str | Path | None) -> str | None:
    """The ``config.yaml`` LightningCLI saved into a run folder (``trainer.log_dir``), if any."""
    cfg = Path(log_dir) / "config.yaml" if log_dir else None
    return cfg.read_text() if cfg is not None and cfg.is_file() else None


def read_safetensors(path: str | Path, what: str = "file") -> dict[str, torch.Tensor]:
    """Load a ``.safetensors`` file; a missing, truncated or foreign file is a ``DataError`` naming it."""
    from safetensors.torch import load_file

    from equireg_lit.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise DataError(
            f"{what} {path} is not a readable .safetensors file ({type(err).__name__}: {err}); "
            "it is truncated or of another format: rewrite it with safetensors.torch.save_file"
        ) from None


def cached_tensors(cache_dir: str | Path, prefix: str, provenance: dict,
                   build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Tensors cached as ``<prefix>_<hash>.safetensors`` with their provenance JSON beside them;
    ``build()`` runs (and the cache is written atomically) when no file matches ``provenance``."""
    from safetensors.torch import load_file, save_file

    canonical = json.loads(json.dumps(provenance))  # tuples -> lists, as stored
    key = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"{prefix}_{key}.safetensors"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file() and json.loads(meta.read_text()) == canonical:
        return load_file(str(path))
    tensors = build()
    atomic_write(path, lambda p: save_file(tensors, str(p)))
    atomic_write_json(meta, provenance)
    return tensors
