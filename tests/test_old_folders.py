"""Folders written before config.json and index.json had format versions of their own (until
issue 20 both stored the shards' version, 1) are read as they are by every reader: inspect,
verify, a resumed run and the trainer; and what a run writes now is those files byte for byte.
Training runs store their configs under the keys they always had (the extraction `shards`, the
subset `part`, a fusion head `method`), though issue 31 renamed the fields, and evaluate and resume."""
from __future__ import annotations

import json
from dataclasses import fields

import pytest
import torch

from flowprep.extract.config import ExtractConfig
from flowprep.format.folder import ExtractionFolder, FolderError
from flowprep.format.folder_config import FolderConfig
from flowprep.tools.inspection import inspect_path
from flowprep.tools.verify import verify_path
from tests.support.cli import twostream
from tests.support.synthetic import indexed_video, moving_video, write_extraction
from twostream.core.config import EvalConfig, TrainConfig
from twostream.core.run_folder import scores_file
from twostream.core.scores import load_scores
from twostream.data.extraction import open_extraction
from twostream.feature_fusion.config import FusionTrainConfig
from twostream.feature_fusion.heads import HeadSpec
from twostream.streams.trainer import fit


def config_as_written_before(settings: dict) -> str:
    """config.json as format/folder.py wrote it before the split (commit 07c10be)."""
    return json.dumps({"format_version": 1, "extract": settings}, indent=1)


def index_as_written_before(videos: dict) -> str:
    """index.json likewise: each video's fields in IndexEntry's order."""
    fields = ("shard", "label", "label_name", "num_frames", "splits")
    return json.dumps({"format_version": 1, "videos": {v: {k: e[k] for k in fields} for v, e in videos.items()}},
                      indent=1)


@pytest.fixture()
def old_folder(tmp_path):
    """An extraction folder whose config.json and index.json are the bytes the old code wrote
    (its shards are of the shard format, whose version did not change)."""
    out = write_extraction(tmp_path / "old", [indexed_video("a", 6), indexed_video("b", 5, label=1)])
    settings = json.loads((out / "config.json").read_text(encoding="utf-8"))["extract"]
    videos = json.loads((out / "index.json").read_text(encoding="utf-8"))["videos"]
    (out / "config.json").write_text(config_as_written_before(settings), encoding="utf-8")
    (out / "index.json").write_text(index_as_written_before(videos), encoding="utf-8")
    return out, settings


def test_a_folder_written_before_the_versions_split_is_read_by_every_reader(old_folder):
    out, settings = old_folder
    folder = ExtractionFolder(out)
    assert folder.read_config() == FolderConfig("extract", settings)
    assert sorted(folder.read_index()) == ["a", "b"]
    summary = inspect_path(out)
    assert summary["config"] == {"format_version": 1, "extract": settings} and summary["indexed_videos"] == 2
    report = verify_path(out)
    assert report.ok, [str(p) for p in report.problems]
    extraction = open_extraction(out)  # what `twostream train` opens
    assert sorted(extraction.index) == ["a", "b"] and extraction.config.kind == "extract"
    # a run with the same settings resumes into it; one with other settings is refused
    folder.prepare("extract", ExtractConfig.from_dict(settings), overwrite=False)
    with pytest.raises(FolderError, match=r"different config \(bound: 20.0 -> 10.0\)"):
        folder.prepare("extract", ExtractConfig.from_dict({**settings, "bound": 10.0}), overwrite=False)


def test_a_run_writes_the_files_as_before(old_folder):
    out, settings = old_folder
    folder = ExtractionFolder(out)
    config_before, index_before = (out / "config.json").read_bytes(), (out / "index.json").read_bytes()
    folder.write_config("extract", settings)
    folder.write_index(folder.read_index().values())
    assert (out / "config.json").read_bytes() == config_before
    assert (out / "index.json").read_bytes() == index_before


# the config fields renamed by issue 31 and the keys the files store them under, as they always
# have (spelt out here, not taken from config.RENAMED_KEYS, so that this checks that table)
KEYS_BEFORE_THE_RENAMES = {"extraction": "shards", "subset": "part", "head": "method"}


def keys_as_written_before(config_class) -> set[str]:
    """The keys of a stored `config_class` before issue 31: its fields, the renamed ones by their old names."""
    return {KEYS_BEFORE_THE_RENAMES.get(f.name, f.name) for f in fields(config_class)}


def test_a_run_stores_its_configs_under_the_keys_it_wrote_before_and_reads_them(tmp_path, capsys):
    videos = [moving_video(f"train{i}", i % 2, seed=i, width=40, height=32) for i in range(4)]
    videos += [moving_video(f"test{i}", i % 2, seed=9 + i, width=40, height=32, splits={"split1": "test"})
               for i in range(2)]
    extraction, run = write_extraction(tmp_path / "ex", videos), tmp_path / "run"
    config = TrainConfig(extraction=str(extraction), out=str(run), crop_size=32, epochs=1, batch_size=2, holdout=0.0,
                         val_every=0, workers=0, threads=1)
    fit(config, interactive=False)
    # config.json and the checkpoint's config: the extraction is "shards", as before
    written = json.loads((run / "config.json").read_text())
    assert set(written) == keys_as_written_before(TrainConfig) and written["shards"] == str(extraction)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert set(json.loads(state["config"])) == keys_as_written_before(TrainConfig)
    assert TrainConfig.from_dict(written) == config

    # evaluate finds the extraction in config.json; the scores file's meta and the configs copied
    # into it keep their keys
    code, out, err = twostream(capsys, "evaluate", str(run), "--clips", "2", "--crops", "center", "--loader-workers",
                               "0", "--threads", "1")
    assert code == 0, err
    assert f"2 test videos of split1 in {extraction}" in out
    meta = load_scores(run / scores_file("test")).meta
    assert meta["part"] == "test" and meta["shards"] == str(extraction)
    assert set(meta["train_config"]) == keys_as_written_before(TrainConfig)
    assert set(meta["evaluate_config"]) == keys_as_written_before(EvalConfig)
    # the stored config is the same run's: resuming it is not refused
    assert fit(config, resume=True, interactive=False).trained == 0


def test_a_fusion_run_config_and_head_keep_their_stored_keys():
    config = FusionTrainConfig(spatial="s.pt", temporal="t.pt", extraction="ex", out="o", subset="val",
                               head="attention")
    written = json.loads(config.to_json())  # config.json and the checkpoint's config
    assert set(written) == set(config.to_dict()) == keys_as_written_before(FusionTrainConfig)
    assert (written["shards"], written["part"], written["method"]) == ("ex", "val", "attention")
    assert FusionTrainConfig.from_json(config.to_json()) == config
    # a fusion checkpoint's "head" entry
    head = json.loads(config.head_spec.to_json())
    assert head == {"method": "attention", "hidden": 128, "dropout": 0.5}
    assert HeadSpec.from_json(config.head_spec.to_json()) == config.head_spec
