"""A sample of issue 19's scenarios (tests/support/reliability/signals.py), on every `make test`:
SIGTERM to an extraction and to training (mid-epoch checkpoint, resumed to the same weights),
two training runs into one folder, the resume check at scale, and Ctrl-C while an extraction's or
an export's workers still import. `make bench-reliability` runs
the whole sweep."""
from __future__ import annotations

import pytest

from tests.support import reliability as r
from tests.support.reliability import signals as s
from tests.support.synthetic import moving_video, write_extraction

pytestmark = pytest.mark.slow


def test_same_weights_needs_the_same_names_and_at_least_one():
    """The scenarios' weight comparison: an empty or partial state dict is not the reference's."""
    import torch

    from tests.support.reliability.training import same_tensors

    reference = {"w": torch.ones(2), "b": torch.zeros(1)}
    assert same_tensors(dict(reference), reference)
    assert not same_tensors({}, {})
    assert not same_tensors({"w": torch.ones(2)}, reference)  # a tensor lost
    assert not same_tensors(reference, {"w": torch.ones(2)})
    assert not same_tensors({**reference, "w": torch.zeros(2)}, reference)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> r.Reference:
    return s.signal_reference(tmp_path_factory.mktemp("signals"))


# to the group: a worker process that acted on the signal itself printed a line after the run's
# one line (runkit/signals.py, leave_stops_to and _redeliver)
@pytest.mark.parametrize("name,to", [("SIGTERM", "main"), ("SIGTERM", "group"), ("SIGINT", "group")])
def test_a_signal_stops_an_extraction_with_its_workers_and_the_same_command_resumes_it(reference, tmp_path, name, to):
    r.assert_held(s.extraction_signal(reference, tmp_path, name, to))


@pytest.fixture(scope="module")
def early(reference, tmp_path_factory) -> dict[str, list[str]]:
    return s.early_commands(tmp_path_factory.mktemp("early"), reference.manifest, reference.out)


# issue 30: the workers' KeyboardInterrupt tracebacks while they still imported (19-47 lines)
@pytest.mark.parametrize("name", ["extract", "export-rawframes"])
def test_ctrl_c_while_the_workers_still_import_prints_one_line(early, name):
    r.assert_held(s.early_group_sigint(early, name))


# issue 30: 215 processes, 145 of them alive 3 minutes after the SIGTERM
def test_a_stopped_manifest_check_has_at_most_a_worker_a_core_and_ends_them(tmp_path):
    r.assert_held(s.stopped_manifest_check(tmp_path))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    videos = [moving_video(f"train{i}", i % 2, seed=i, width=56, height=48) for i in range(12)]
    return write_extraction(tmp_path_factory.mktemp("shards"), videos, codec="jpeg:95")


@pytest.fixture(scope="module")
def baseline(shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline") / "run"
    done = r.run(r.train_command(shards, out))
    assert done.returncode == 0, done.stderr[-2000:]
    return out / "checkpoint.pt"


def test_sigterm_to_training_saves_a_mid_epoch_checkpoint_that_resumes_to_the_same_weights(shards, baseline, tmp_path):
    r.assert_held(s.training_signal(shards, tmp_path, baseline, "SIGTERM", "main"))


def test_sigterm_to_training_and_its_loader_workers_saves_a_mid_epoch_checkpoint(shards, baseline, tmp_path):
    r.assert_held(s.training_signal(shards, tmp_path, baseline, "SIGTERM", "group", workers=2))


def test_a_second_training_run_into_the_same_folder_is_refused_while_the_first_runs(shards, baseline, tmp_path):
    r.assert_held(s.concurrent_training(shards, tmp_path, baseline))
