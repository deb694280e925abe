import os

import pytest
import torch

os.environ.setdefault("PL_DISABLE_FORK", "1")
# EQUIREG_TEST_THREADS=1 on a machine busy with other jobs (two threads then thrash).
torch.set_num_threads(int(os.environ.get("EQUIREG_TEST_THREADS", max(1, min(2, os.cpu_count() or 1)))))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def repo_root() -> str:
    return REPO
