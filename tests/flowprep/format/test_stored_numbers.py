"""Numbers read from a shard, an index or a manifest are input (issue 30, item 5): each is checked
before it sizes an allocation or an index, and a bad one is one line naming the file, the video
and the value (before: a cv2 traceback for two equal offsets, 74.5 GiB asked for a means dataset
of 10^10 entries, 1.82 TiB for a width of 10^6, an IndexError for 10^9 frames, a ValueError for a
bound of 0, a label of 10^12 extracted and then a classifier of 10^12 outputs: twostream's side in
tests/twostream/data/test_class_labels.py)."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from flowprep.format.folder import ExtractionFolder
from flowprep.format.manifest import ManifestError, read_manifest
from flowprep.format.shards import ShardFormatError, open_shard, video_reader
from tests.support.cli import flowprep
from tests.support.extraction import extract
from tests.support.videos import make_videos


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("numbers")
    manifest = make_videos(root / "videos", {"right": (2, 0), "down": (0, 2)})
    return extract(manifest, root / "extraction")


def _equal_offsets(g):
    offsets = g["rgb_offsets"][()]
    offsets[2] = offsets[1]
    g["rgb_offsets"][...] = offsets


def _huge_means(g):
    del g["flow_forward_mean"]
    g.create_dataset("flow_forward_mean", shape=(10**10, 2), dtype=np.float32, chunks=(1024, 2))  # no storage


TAMPERINGS = {
    "two equal rgb offsets": (_equal_offsets, "offsets 1 and 2"),
    "a means dataset of 10^10 entries": (_huge_means, "flow_forward_mean holds 10000000000 entries"),
    "width and height of 10^6": (lambda g: g.attrs.update(width=10**6, height=10**6), "width 1000000"),
    "10^9 frames": (lambda g: g.attrs.update(num_frames=10**9), "num_frames 1000000000"),
    "a bound of 0": (lambda g: g["flow_forward"].attrs.update(bound=0.0), "bound 0.0"),
    "a label of 10^12": (lambda g: g.attrs.update(label=10**12), "label 1000000000000"),
}


@pytest.mark.parametrize("case", sorted(TAMPERINGS))
def test_a_number_a_shard_states_is_checked_before_it_is_used(source, tmp_path, capsys, case):
    tamper, expected = TAMPERINGS[case]
    folder = tmp_path / "copy"
    shutil.copytree(source, folder)
    with h5py.File(folder / "shard-00000.h5", "r+") as f:
        tamper(f["videos/right"])
    with open_shard(folder / "shard-00000.h5") as f, pytest.raises(ShardFormatError) as info:
        video = video_reader(f, "right")
        video.rgb(2)  # offsets are checked when first read
    message = str(info.value)
    assert "shard-00000.h5" in message and "'right'" in message and expected in message, message
    code, out, err = flowprep(capsys, "verify", folder)
    assert code == 3 and "Traceback" not in err, err
    assert expected in out + err and "right" in out + err, out + err
    code, _, err = flowprep(capsys, "show", folder, "--video", "right", "--out", tmp_path / "right.png")
    assert code == 2 and expected in err and "Traceback" not in err, err


@pytest.mark.parametrize("label", ["1000000000000", "99999999999999999999999"])
def test_a_manifest_label_beyond_any_class_count_is_refused_naming_its_line(tmp_path, label):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"video_id,path,label\na,a.avi,0\nb,b.avi,{label}\n")
    with pytest.raises(ManifestError, match=f"line 3: label {label} is above 99,999"):
        read_manifest(manifest)


def test_an_index_label_beyond_any_class_count_is_refused(source, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(source, folder)
    index = json.loads((folder / "index.json").read_text())
    index["videos"]["right"]["label"] = 10**12
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(ShardFormatError, match="label 1000000000000 is not an integer in 0..99,999"):
        ExtractionFolder(folder).read_index()
