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


def test_dockerfile_installs_package_and_sets_entrypoint(repo_root):
    text = open(os.path.join(repo_root, "Dockerfile")).read()
    assert text.startswith("FROM pytorch/pytorch:") and "cuda" in text.split("\n")[0]
    assert "pip install" in text and 'ENTRYPOINT ["equireg"]' in text
