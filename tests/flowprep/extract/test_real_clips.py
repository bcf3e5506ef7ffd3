"""The real clips of shared/data/clips extract completely, with frame counts from decoding."""
from __future__ import annotations

import pytest

from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.decode import count_frames, open_video
from flowprep.extract.run import run_extract
from flowprep.format.folder import ExtractionFolder
from flowprep.format.manifest import read_manifest
from tests.conftest import REPO

MANIFEST = REPO / "data_manifests" / "shared_clips.csv"


def test_tree_avi_header_lies_and_decoding_is_believed(shared_data):
    tree = shared_data / "clips" / "other" / "tree.avi"
    _, info = open_video(tree)
    assert info.header_frames == 444
    assert count_frames(tree) == 68


@pytest.fixture(scope="module")
def extraction(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("clips")
    config = ExtractConfig(flow_method="dis", flow_params=(("preset", "ultrafast"),), width=160, height=120)
    summary = run_extract(ExtractRun(MANIFEST, shared_data / "clips", out, config, workers=2), interactive=False)
    return out, summary


def test_every_real_clip_extracts_with_its_decoded_frame_count(extraction, shared_data):
    out, summary = extraction
    assert summary.ok, summary.failures
    index = ExtractionFolder(out).read_index()
    entries = read_manifest(MANIFEST)
    assert set(index) == {e.video_id for e in entries}
    for e in entries:
        assert index[e.video_id].num_frames == count_frames(shared_data / "clips" / e.path), e.video_id
    assert index["tree"].num_frames == 68
    assert index["v_SoccerJuggling_g23_c01"].num_frames == 240
    assert summary.pairs == sum(e.num_frames - 1 for e in index.values())
