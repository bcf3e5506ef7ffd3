from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FLOWPREP_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real clips, ground-truth flow, official splits); skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a test module (pytestmark = pytest.mark.usefixtures(...)): on 2
    shared cores, OpenMP threads spinning for a busy core cost seconds."""
    import torch  # here, not at the top: the extraction tests never import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def learning_seed() -> int:
    """The seed of the tests that assert what a model learned. The suite runs one; such a test
    must hold for others too (other CPUs take other float paths): check with LEARNING_SEED=1..5."""
    return int(os.environ.get("LEARNING_SEED", "0"))


@pytest.fixture(scope="session")
def flyingchairs_tvl1(shared_data):
    """The 9 FlyingChairs pairs and OpenCV tvl1's average endpoint error on them with flowprep's
    defaults: computed once (about 15 s on 2 cores) for the tests that compare against it."""
    from flowprep.tools.flow_eval import average_epe, flyingchairs_pairs

    pairs = flyingchairs_pairs(shared_data / "flow_gt" / "flyingchairs")
    return pairs, average_epe("tvl1", None, pairs, workers=2)[0]


@pytest.fixture(scope="session")
def tampered_work(tmp_path_factory):
    """The work folder of tests/support/reliability/tampered.py's scenarios, shared by the test files
    that sample them (flowprep's folders, twostream's checkpoints): its base extraction is made once."""
    return tmp_path_factory.mktemp("tampered")
