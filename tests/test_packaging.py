import os
import subprocess
import sys
import zipfile

import pytest


def test_mapped_subpackages_import_from_the_package():
    import equireg_lit.callbacks as cb
    import equireg_lit.datamodules as dm

    assert hasattr(cb, "PredictionWriter") and hasattr(dm, "MNISTDataModule")


def test_no_bare_top_level_callbacks_or_datamodules(tmp_path):
    code = "import importlib.util as u; print(u.find_spec('callbacks'), u.find_spec('datamodules'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None None"


@pytest.mark.slow
def test_regular_wheel_layout(tmp_path, repo_root):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), repo_root],
        check=True,
    )
    (wheel,) = [p for p in os.listdir(tmp_path) if p.endswith(".whl")]
    names = zipfile.ZipFile(tmp_path / wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert "callbacks" not in tops and "datamodules" not in tops
    assert "equireg_lit/callbacks/prediction_writer.py" in names
    assert "equireg_lit/datamodules/mnist.py" in names
    assert any(n.startswith("equireg_lit/weights/") for n in names)
    assert "equireg_lit/weights/mnist32_latent/unet/diffusion_pytorch_model.safetensors" in names


def test_dockerfile_installs_with_ci_constraints_as_a_non_root_user(repo_root):
    """The image installs with the constraints CI installs with, runs as a non-root user and keeps
    the virtual environment, runs and data out of its build context (no daemon here to build it)."""
    text = open(os.path.join(repo_root, "Dockerfile")).read()
    assert "pip install -c /opt/equireg-lit/constraints.txt /opt/equireg-lit" in text
    assert "USER equireg" in text and "ARG UID" in text and 'ENTRYPOINT ["equireg"]' in text
    assert "-m pip install -q -c constraints.txt" in open(os.path.join(repo_root, "Makefile")).read()
    ignored = open(os.path.join(repo_root, ".dockerignore")).read().split()
    assert {".venv", "runs", "data", "weights", ".git"} <= set(ignored)
    for volume in ("/work/weights", "/work/data", "/work/runs", "/work/data_cache"):
        assert volume in text


def test_installed_versions_match_the_constraints(repo_root):
    """This environment (CI's, installed by make install) holds exactly the pinned versions."""
    from importlib.metadata import version

    for line in open(os.path.join(repo_root, "constraints.txt")):
        line = line.split("#")[0].strip()
        if line:
            name, pinned = line.split("==")
            assert version(name) == pinned, f"{name} {version(name)} installed, constraints.txt pins {pinned}"


def test_version_flag(capsys):
    from equireg_lit.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code in (0, None)
    from importlib.metadata import version

    assert version("equireg-lit") in capsys.readouterr().out
