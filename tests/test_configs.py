"""Composed configs: parts apply in order, errors name the file, and every tuned number has one home."""

import glob
import os
from pathlib import Path

import pytest
import yaml

from equireg_lit.cli import main
from equireg_lit.errors import ConfigError
from equireg_lit.utils.compose import expand_config_args

ROOT = Path(__file__).resolve().parent.parent
TUNED_KEYS = {"zeta", "alpha", "weight", "lambda_", "lr"}  # numbers a tuner chooses on validation


def _keys(doc, path=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*path, k), v
            yield from _keys(v, (*path, k))


def test_parts_apply_in_order_and_the_entry_overrides_them(tmp_path):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "a.yaml").write_text("x: 1\ny: 1\n")
    (tmp_path / "parts" / "b.yaml").write_text("compose: [a.yaml]\ny: 2\n")
    entry = tmp_path / "entry.yaml"
    entry.write_text("compose: [parts/b.yaml]\nz: 3\n")
    args = expand_config_args(["predict", "--config", str(entry), "--trainer.max_epochs", "1"])
    assert args[0] == "predict" and args[-2:] == ["--trainer.max_epochs", "1"]
    configs = args[2:-2:2]
    assert configs[0] == str(tmp_path / "parts" / "a.yaml")
    assert yaml.safe_load(configs[1]) == {"y": 2} and yaml.safe_load(configs[2]) == {"z": 3}


def test_a_plain_config_and_a_yaml_string_pass_through(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("x: 1\n")
    argv = ["fit", f"--config={plain}", "--config", "x: 2\n"]
    assert expand_config_args(argv) == ["fit", "--config", str(plain), "--config", "x: 2\n"]


def test_missing_parts_and_cycles_are_one_line_errors(tmp_path, capsys):
    entry = tmp_path / "entry.yaml"
    entry.write_text("compose: [nowhere.yaml]\n")
    with pytest.raises(SystemExit) as e:
        main(["predict", "--config", str(entry)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert "composed part 'nowhere.yaml' not found" in err and str(entry) in err
    entry.write_text("compose: [entry.yaml]\n")
    with pytest.raises(ConfigError, match="composes itself"):
        expand_config_args(["--config", str(entry)])
    entry.write_text("compose: parts.yaml\n")
    with pytest.raises(ConfigError, match="must be a list"):
        expand_config_args(["--config", str(entry)])


def test_tuned_numbers_live_only_under_configs_tuned():
    """zeta, alpha and guidance weights are chosen on validation and written by the tuner to
    configs/tuned/; an entry, base, task or method file that sets one would be a second home."""
    for path in glob.glob(str(ROOT / "configs" / "**" / "*.yaml"), recursive=True):
        rel = os.path.relpath(path, ROOT)
        if rel.startswith(("configs/tuned", "configs/fit", "configs/test")) or "demo_gaussian" in rel:
            continue  # fit configs' lr is a training setting; the Gaussian demo has no tuning
        doc = yaml.safe_load(Path(path).read_text()) or {}
        model = (doc.get("model") or {}) if isinstance(doc, dict) else {}
        for keys, _ in _keys(model):
            assert keys[-1] not in TUNED_KEYS, f"{rel} sets {'.'.join(keys)}; put it in configs/tuned/"


@pytest.mark.parametrize("entry", sorted(glob.glob(str(ROOT / "configs" / "predict" / "*.yaml"))), ids=os.path.basename)
def test_every_composed_part_exists(entry):
    doc = yaml.safe_load(Path(entry).read_text())
    for part in doc.get("compose", []):
        assert (Path(entry).parent / part).is_file(), f"{entry}: {part}"
