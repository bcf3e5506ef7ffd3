"""Messages that name their real cause (issue 30, item 13): a stop before the first checkpoint
does not promise one, a read-only --out says read-only, too many open files is not a corrupt
shard, NaN in a weights file is not blamed on the learning rate, and a class folder or file name
with control characters is refused by `manifest folder` (escaped) instead of being written into a
manifest that extract then refuses."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys

import pytest
import torch

from flowprep.format.shards import open_shard
from tests.conftest import REPO
from tests.support.cli import PYTHON, flowprep, one_line_error, run, twostream
from tests.support.synthetic import moving_video, write_extraction
from tests.support.videos import make_videos


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    videos = [moving_video(f"v{i}", i % 2, seed=i, width=56, height=48) for i in range(4)]
    return write_extraction(tmp_path_factory.mktemp("messages") / "ex", videos, codec="jpeg:95")


TRAIN = ("--stream", "spatial", "--crop-size", "48", "--epochs", "1", "--batch-size", "4", "--loader-workers", "0",
         "--threads", "1", "--val-every", "0")


def test_a_stop_while_training_starts_promises_no_checkpoint(shards, tmp_path, capsys, monkeypatch):
    """SIGTERM while the run opens its extraction (before any epoch): before, the line said to
    continue from RUN/checkpoint.pt with --resume, a file that did not exist."""
    from twostream.streams import trainer

    real = trainer.open_extraction

    def opened_under_a_stop(root):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered here, in start-up, as a scheduler would
        return real(root)

    monkeypatch.setattr(trainer, "open_extraction", opened_under_a_stop)
    code, _, err = twostream(capsys, "train", str(shards), "--out", str(tmp_path / "run"), *TRAIN)
    assert code == 143, err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    last = err.strip().splitlines()[-1]
    assert "--resume" not in last and "nothing was saved" in last, last


@pytest.fixture
def read_only(tmp_path):
    """A read-only mount (tmpfs, as root); skipped where mounting is not allowed."""
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_an_out_on_a_read_only_mount_says_read_only(shards, read_only, capsys):
    code, _, err = twostream(capsys, "train", str(shards), "--out", str(read_only / "run"), *TRAIN)
    assert code in (1, 2) and "Read-only file system" in err and "No such file" not in err, err


def test_too_many_open_files_is_not_a_corrupt_shard(shards):
    """With the descriptor limit reached, opening a shard says so (before: 'not a readable HDF5
    file (corrupt or truncated?)', which sends a user to re-extract a whole dataset)."""
    code = ("import resource, sys\n"
            "from flowprep.format.shards import open_shard\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))\n"
            "held = []\n"
            "try:\n"
            "    while True: held.append(open(sys.argv[1], 'rb'))\n"
            "except OSError: pass\n"
            "try: open_shard(sys.argv[2])\n"
            "except OSError as exc: print(type(exc).__name__, exc)\n")
    done = subprocess.run([sys.executable, "-c", code, str(shards / "index.json"), str(shards / "shard-00000.h5")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "too many open files" in done.stdout and "corrupt" not in done.stdout, done.stdout + done.stderr
    assert resource.getrlimit(resource.RLIMIT_NOFILE)  # (this process's limit was left alone)
    open_shard(shards / "shard-00000.h5").close()


def test_nan_in_pretrained_weights_is_named_not_blamed_on_the_learning_rate(shards, tmp_path, capsys):
    import torchvision

    state = torchvision.models.resnet18().state_dict()  # an RGB ImageNet-shaped backbone
    state["conv1.weight"][0, 0, 0, 0] = float("nan")
    weights = tmp_path / "resnet18.pth"
    torch.save(state, weights)
    line = one_line_error(capsys, "train", str(shards), "--out", str(tmp_path / "run"), *TRAIN,
                          "--pretrained", str(weights))
    assert "conv1.weight" in line and "not finite" in line and "--lr" not in line, line


@pytest.mark.parametrize("bad", ["walk\x1b[31m", "run\u202e"])
def test_a_class_folder_with_control_characters_is_refused_escaped(tmp_path, capsys, bad):
    manifest = make_videos(tmp_path / "src", {"right": (2, 0)})
    root = tmp_path / "videos"
    (root / bad).mkdir(parents=True)
    (root / bad / "a.avi").write_bytes((manifest.parent / "right.avi").read_bytes())
    code, _, err = flowprep(capsys, "manifest", "folder", root, "--out", tmp_path / "m.csv")
    assert code == 2 and "\x1b" not in err and "\u202e" not in err, repr(err)
    assert "class folder" in err and "control characters" in err, err
    assert not (tmp_path / "m.csv").exists()


@pytest.mark.parametrize("command", ["flowprep", "twostream"])
def test_a_memory_limit_too_low_for_the_libraries_is_one_line(command):
    """Under `ulimit -v` of 256 MiB, OpenCV's shared library cannot even be mapped: before, an
    ImportError traceback from inside cv2; now one line naming the limit (runkit.launch)."""
    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (256 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))

    done = run([PYTHON, "-m", command, "--help"], timeout=120, preexec_fn=limited)
    if done.returncode == 0:
        pytest.skip("this machine's libraries load within 256 MiB of address space")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "ulimit -v" in done.stderr, done.stderr
