"""Composed configs: an entry config names its parts, each part has one home.

A YAML config may start with ``compose: [part, ...]`` (paths relative to that file). Its parts are
applied in order, each as its own ``--config``, then the file's remaining keys, so later parts and
the entry itself override earlier ones. That is jsonargparse's own semantics for several
``--config`` arguments (nested ``init_args`` merge, a same ``class_path`` keeps its settings);
jsonargparse has no include directive, hence this small expansion of the command line.

    compose:
      - ../method/dps_equireg.yaml     # solver + regularizer
      - ../base/mnist32.yaml           # prior + data
      - ../task/mnist32/sr4.yaml       # operator
      - ../tuned/mnist32/sr4_s50.yaml  # numbers chosen on validation (written by the tuner)
    trainer:
      default_root_dir: runs/mnist32_sr4_dps
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from equireg_lit.errors import ConfigError

COMPOSE_KEY = "compose"


def expand_config_args(argv: list[str]) -> list[str]:
    """Replace every ``--config FILE`` whose file composes parts by its parts' ``--config`` arguments."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--config", "-c") and i + 1 < len(argv):
            out += _expand(argv[i + 1], ())
            i += 2
        elif arg.startswith("--config="):
            out += _expand(arg.split("=", 1)[1], ())
            i += 1
        else:
            out.append(arg)
            i += 1
    return out


def _expand(value: str, chain: tuple[Path, ...]) -> list[str]:
    path = Path(value)
    if "\n" in value or path.suffix not in (".yaml", ".yml") or not path.is_file():
        return ["--config", value]  # a YAML string, or a file jsonargparse reports on itself
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or COMPOSE_KEY not in doc:
        return ["--config", value]
    parts = doc.pop(COMPOSE_KEY)
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        raise ConfigError(f"{path}: '{COMPOSE_KEY}' must be a list of config files (relative to {path.parent})")
    if path.resolve() in chain:
        raise ConfigError(f"{path}: composes itself (through {' -> '.join(str(c) for c in chain)}); remove the cycle")
    args: list[str] = []
    for part in parts:
        part_path = Path(os.path.normpath(path.parent / part))
        if not part_path.is_file():
            raise ConfigError(f"{path}: composed part '{part}' not found at {part_path}; "
                              "parts are relative to the file that composes them")
        args += _expand(str(part_path), (*chain, path.resolve()))
    if doc:  # the entry's own keys, last: they override every part
        args += ["--config", yaml.safe_dump(doc, sort_keys=False)]
    return args
