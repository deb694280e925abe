import os

import pytest
import torch

os.environ.setdefault("PL_DISABLE_FORK", "1")
# Up to two threads per test process, the cores shared among pytest-xdist's workers (`make test`
# runs `-n auto`); EQUIREG_TEST_THREADS=1 on a machine busy with other jobs (threads then thrash).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, min(2, (os.cpu_count() or 1) // _WORKERS))
torch.set_num_threads(int(os.environ.get("EQUIREG_TEST_THREADS", _THREADS)))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def repo_root() -> str:
    return REPO


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the multi-process tests first, so that pytest-xdist's workers share them instead of
    one worker running them alone at the end."""
    items.sort(key=lambda item: item.path.name != "test_scale.py")
