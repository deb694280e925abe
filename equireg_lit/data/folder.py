"""The predictions folder: one home for its layout, its lock, its settings record and its samples.

Layout::

    <root>/run.json                 settings fingerprint of the samples in this folder
    <root>/.lock                    held by the live run (process id, host)
    <root>/samples/NNNNN.safetensors, NNNNN_{recon,measurement,truth}.png
    <root>/samples/NNNNN.json       per-sample metrics; written last, it marks the sample finished
    <root>/metrics.csv, summary.json, failures.json
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from equireg_lit.errors import ConfigError, DataError
from equireg_lit.utils.io import atomic_write_json

SUMMARY_FILES = ("metrics.csv", "summary.json", "failures.json", "run.json")


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def settings_diff(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for every setting that differs between two fingerprints."""
    a, b = _flatten(old), _flatten(new)
    return [f"{k}: {a.get(k, '<unset>')} -> {b.get(k, '<unset>')}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class PredictionFolder:
    """A predictions folder (see the module docstring).

    Args:
        root: The folder (``<default_root_dir>/predictions`` for the CLI).
    """

    @classmethod
    def of_run(cls, default_root_dir: str | Path | None) -> "PredictionFolder":
        """The predictions folder of a run: ``<default_root_dir>/predictions``."""
        return cls(Path(default_root_dir or ".") / "predictions")

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.samples = self.root / "samples"
        self.lock_path = self.root / ".lock"
        self._own_lock = False

    # -- before any work ---------------------------------------------------------------------
    def check_writable(self) -> None:
        """Create the folders and prove they can be written, or raise a ``DataError`` naming them."""
        try:
            self.samples.mkdir(parents=True, exist_ok=True)
            probe = self.samples / f".write-test-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as err:
            raise DataError(
                f"cannot write predictions to {self.samples} ({err.strerror or err}); "
                "fix its permissions or choose another --trainer.default_root_dir"
            ) from None

    def acquire_lock(self) -> None:
        """Hold the folder for this process; refuse when a live process holds it, take over a stale lock."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                fd = None
            if fd is not None:
                with os.fdopen(fd, "w") as fh:
                    json.dump(me, fh)
                self._own_lock = True
                return
            holder = self.live_holder()
            if holder is None:  # stale (its process is gone) or unreadable
                self.lock_path.unlink(missing_ok=True)
                continue
            pid, host = int(holder.get("pid", -1)), holder.get("host")
            if pid == me["pid"] and host == me["host"]:
                self._own_lock = True
                return
            if host == me["host"]:
                raise DataError(
                    f"{self.root} is in use by process {pid} on {host} (since {holder.get('started')}); "
                    "wait for it to finish, or write to another --trainer.default_root_dir"
                )
            raise DataError(
                f"{self.root} is locked by process {pid} on host {host}; if that run is dead, delete "
                f"{self.lock_path}, or write to another --trainer.default_root_dir"
            )
        raise DataError(f"could not take the lock {self.lock_path}; another run keeps taking it")

    def live_holder(self) -> dict | None:
        """Who holds the folder's lock (``pid``, ``host``, ``started``): a live process on this host,
        or one on another host (whose life cannot be checked); None when free, stale or unreadable."""
        try:
            holder = json.loads(self.lock_path.read_text())
        except (OSError, ValueError):
            return None
        pid, host = int(holder.get("pid", -1)), holder.get("host")
        if host is None or (host == socket.gethostname() and not (pid > 0 and _pid_alive(pid))):
            return None
        return holder

    def finished_indices(self) -> set[int]:
        """Indices whose per-sample record exists (cheap: ``scan`` also checks each record)."""
        if not self.samples.is_dir():
            return set()
        return {int(p.stem) for p in self.samples.glob("*.json") if p.stem.isdigit()}

    @property
    def holds_lock(self) -> bool:
        return self._own_lock

    def release_lock(self) -> None:
        if self._own_lock:
            self.lock_path.unlink(missing_ok=True)
            self._own_lock = False

    def claim(self, fingerprint: dict | None, overwrite: bool) -> None:
        """Make the folder hold samples of ``fingerprint`` only.

        With ``overwrite`` every earlier sample and summary is removed. Otherwise a folder whose
        recorded settings differ (or whose samples have no record) is refused, naming the keys.
        """
        run = self.root / "run.json"
        if overwrite:
            self.clear()
        elif fingerprint is not None:
            if run.is_file():
                try:
                    old = json.loads(run.read_text())
                except ValueError:
                    raise DataError(f"{run} is corrupt; rerun with --overwrite true to start the folder afresh") from None
                diff = settings_diff(old, fingerprint)
                if diff:
                    raise ConfigError(
                        f"{self.root} holds samples of other settings ({'; '.join(diff)}); rerun with "
                        "--overwrite true to replace them, or write to another --trainer.default_root_dir"
                    )
            elif any(self.samples.glob("*.json")):
                raise ConfigError(
                    f"{self.root} holds samples without a settings record (run.json); rerun with --overwrite "
                    "true to replace them, or write to another --trainer.default_root_dir"
                )
        if fingerprint is not None and not run.is_file():
            atomic_write_json(run, fingerprint)

    def clear(self) -> None:
        """Remove every sample and summary file (the lock stays)."""
        if self.samples.is_dir():
            for p in self.samples.iterdir():
                if p.is_file():
                    p.unlink()
        for name in SUMMARY_FILES:
            (self.root / name).unlink(missing_ok=True)

    # -- samples -----------------------------------------------------------------------------
    def marker(self, index: int) -> Path:
        return self.samples / f"{index:05d}.json"

    def tensors(self, index: int) -> Path:
        return self.samples / f"{index:05d}.safetensors"

    def scan(self) -> tuple[dict[int, dict], list[str]]:
        """Finished samples' records, and a line for every marker that is corrupt or orphaned
        (those are not finished: a rerun redoes them)."""
        records: dict[int, dict] = {}
        problems: list[str] = []
        if not self.samples.is_dir():
            return records, problems
        for p in sorted(self.samples.glob("*.json")):
            if not p.stem.isdigit():
                continue
            index = int(p.stem)
            try:
                rec = json.loads(p.read_text())
                if not isinstance(rec, dict) or rec.get("index") != index:
                    raise ValueError("not a sample record")
            except (OSError, ValueError) as err:
                problems.append(f"{p} is corrupt ({err}); the sample will be redone")
                continue
            if not self._tensors_readable(index):
                problems.append(f"{p} has no readable {self.tensors(index).name}; the sample will be redone")
                continue
            records[index] = rec
        return records, problems

    def _tensors_readable(self, index: int) -> bool:
        from safetensors import safe_open

        path = self.tensors(index)
        try:
            with safe_open(str(path), framework="pt") as fh:
                return "reconstruction" in fh.keys()
        except Exception:  # missing, truncated or foreign
            return False

    def finished(self) -> set[int]:
        return set(self.scan()[0])
