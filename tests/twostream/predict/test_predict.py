"""`twostream predict` and the API's Predictor: a new video's input is what `flowprep extract`
stores for it (computed on the fly with the runs' recorded settings), and tiny runs trained on a
clearly separable real dataset name the class of videos they never saw."""
from __future__ import annotations

import json
import logging
import re
import shutil

import cv2
import numpy as np
import pytest
import torch

from flowprep.format.folder import ExtractionFolder
from tests.conftest import REPO
from tests.support.cli import twostream
from tests.support.trained_runs import CLASSES, train_runs
from twostream.data.store import ShardStore
from twostream.predict.predictor import Predictor, load_scorer
from twostream.predict.video_input import decode_video, flow_backend

DOCS = REPO / "docs" / "api.md"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, learning_seed):
    return train_runs(tmp_path_factory.mktemp("predict"), seed=learning_seed)


def test_the_input_computed_on_the_fly_is_what_extract_stores(runs):
    """Every video of the extraction, decoded by the predictor with the settings its runs recorded:
    the same frames, flow codes (both directions) and mean vectors as its shard, bit for bit."""
    extract = load_scorer(runs.temporal).extract
    assert (extract.flow_method.name, extract.width, extract.height) == ("dis", 64, 64)  # read from the run
    flow = flow_backend(extract)
    index = ExtractionFolder(runs.shards).read_index()
    store = ShardStore(runs.shards)
    for entry in index.values():
        stored = store.video(entry)
        video = decode_video(runs.videos / stored.attrs.source_path, extract, flow)
        assert video.num_frames == stored.num_frames == entry.num_frames
        for i in range(video.num_frames):
            np.testing.assert_array_equal(video.rgb(i), stored.rgb(i))
        for direction in ("forward", "backward"):
            fields = [(direction, i) for i in range(video.num_frames - 1)]
            np.testing.assert_array_equal(video.flow_planes(fields), stored.flow_planes(fields))
            np.testing.assert_array_equal(video.flow_means(direction), stored.flow_means(direction))
    # frames given as an array (RGB, as decoded) are the file's input too
    name, path = next(iter(runs.held_out.items()))
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (read := capture.read())[0]:
        frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
    predictor = Predictor.load(runs.temporal, device="cpu")
    from_frames = predictor.frames(torch.from_numpy(np.stack(frames)))[extract.to_json()]
    from_file = predictor.decode(path)[extract.to_json()]
    fields = [("forward", i) for i in range(from_file.num_frames - 1)]
    np.testing.assert_array_equal(from_frames.flow_planes(fields), from_file.flow_planes(fields))


def test_predict_names_the_class_of_videos_no_run_saw(runs, tmp_path, capsys):
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video")
    held_out = runs.videos / "new"
    code, out, err = twostream(capsys, "predict", str(runs.spatial), str(runs.temporal), str(held_out), str(broken),
                               "--fast", "--device", "cpu", "--top", "2", "--out", str(tmp_path / "out"))
    assert code == 3, err  # some video failed; the others were classified
    lines = out.splitlines()
    assert lines[0].startswith("video") and len(lines) == 1 + len(CLASSES) + 1
    assert f"{broken}  cannot be read: not a readable video" in out and "Traceback" not in err
    for name, path in runs.held_out.items():
        line = next(x for x in lines if x.startswith(str(path)))
        assert re.match(rf"{re.escape(str(path))}\s+{name} \(", line), line  # the right class first
    saved = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert {v["video"]: v.get("label") for v in saved["videos"]} == {
        **{str(p): n for n, p in runs.held_out.items()}, str(broken): None}
    assert (tmp_path / "out" / "predictions.csv").read_text().startswith("video,rank,class,score,error\n")
    # one stream alone, as JSON
    code, out, _ = twostream(capsys, "predict", str(runs.temporal), str(runs.held_out["blue_down"]), "--fast",
                             "--device", "cpu", "--json")
    assert code == 0 and json.loads(out)[0]["label"] == "blue_down"


def test_the_api_predictor_takes_files_frames_and_fusion_methods(runs):
    predictor = Predictor.load(runs.spatial, runs.temporal, fusion="average", clips=2, crops="center", device="cpu")
    assert predictor.fusion.name == "average" and predictor.class_names == tuple(CLASSES)
    for name, path in runs.held_out.items():
        prediction = predictor.predict(path)
        assert prediction.label == name and prediction.top(1)[0][0] == name
        assert prediction.scores.sum() == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="give one spatial run, one temporal run or both"):
        Predictor.load(runs.spatial, runs.spatial)
    with pytest.raises(ValueError, match="frames must be a .T, H, W, 3. uint8 RGB array"):
        predictor.predict(np.zeros((4, 8, 8), np.uint8))


def test_a_run_without_class_names_falls_back_to_its_extraction_s_once(runs, tmp_path, caplog):
    state = torch.load(runs.spatial / "checkpoint.pt", weights_only=True)
    del state["class_names"]
    old = tmp_path / "old"
    old.mkdir()
    torch.save(state, old / "checkpoint.pt")
    with caplog.at_level(logging.WARNING, logger="twostream"):
        scorer = load_scorer(old)
    assert scorer.class_names == tuple(CLASSES)
    assert [r.message for r in caplog.records if "records no class names" in r.message] == [
        f"{old / 'checkpoint.pt'} records no class names (a run from before they were stored); using those of its "
        f"extraction {runs.shards}"]


def test_the_predictor_example_in_docs_api_md_runs_as_written(runs, tmp_path, monkeypatch, capsys):
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL) if "Predictor" in b)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for stream in ("spatial", "temporal"):
        shutil.copytree(getattr(runs, stream), tmp_path / "runs" / stream)
    shutil.copy(runs.held_out["red_right"], tmp_path / "new_video.mp4")
    exec(compile(block, str(DOCS), "exec"), {})  # noqa: S102 (the docs' own code, run as written)
    assert capsys.readouterr().out.splitlines()[0].startswith("red_right")


def real_inputs(runs, run) -> torch.Tensor:
    """The network inputs of a held-out video under the 10 crops, as the protocol feeds them."""
    from torch.utils.data import DataLoader

    from flowprep.format.folder_index import IndexEntry
    from twostream.core.device import resolve_device
    from twostream.data.datasets import EvalSamples
    from twostream.engine.loops import model_input
    from twostream.predict.predictor import _Videos

    predictor = Predictor.load(run, device="cpu")
    scorer = predictor.scorers[0]
    video = predictor.decode(runs.held_out["blue_down"])[scorer.extract.to_json()]
    items = EvalSamples(_Videos([video]), [IndexEntry("0", "", 0, "", video.num_frames, {})], scorer.layout, 1, "ten")
    codes, affine, *_ = next(iter(DataLoader(items, batch_size=1)))
    return model_input(codes.flatten(0, 1), affine.flatten(0, 1), resolve_device("cpu", False, False))


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_an_exported_stream_computes_what_the_run_computes(runs, tmp_path, capsys, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnx", reason="ONNX export needs the onnx package (the onnx extra)")
        ort = pytest.importorskip("onnxruntime")
    code, out, err = twostream(capsys, "export", str(runs.temporal), "--format", fmt, "--out", str(tmp_path))
    assert code == 0, err
    contract = json.loads((tmp_path / "contract.json").read_text())
    assert contract["input"]["shape"] == ["N", 8, 48, 48] and contract["output"]["class_names"] == list(CLASSES)
    assert contract["input"]["parts"][0]["flow_length"] == 4 and contract["extraction"]["flow_method"] == "dis"
    x = real_inputs(runs, runs.temporal)
    assert x.shape == (10, 8, 48, 48)
    # the contract's normalisation is the one the protocol applies
    codes = torch.from_numpy(np.rint((x.numpy() - np.array(contract["input"]["shift"])[:, None, None])
                                     / np.array(contract["input"]["scale"])[:, None, None]))
    assert codes.min() >= 0 and codes.max() <= 255
    expected = load_scorer(runs.temporal).model(x).detach().numpy()
    if fmt == "torchscript":
        got = torch.jit.load(str(tmp_path / "model.torchscript.pt"))(x).detach().numpy()
    else:
        session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.abs(expected).max() > 1e-2  # a network that says something, not zeros


def test_onnx_export_without_the_onnx_package_says_what_to_install(runs, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    code, _, err = twostream(capsys, "export", str(runs.spatial), "--format", "onnx", "--out", str(tmp_path))
    assert code == 2 and "ONNX export needs the onnx package" in err and "pip install 'twostream[onnx]'" in err


def test_live_classifies_a_video_file_played_as_a_stream(runs, tmp_path, capsys):
    """A window of L + 1 = 5 frames, a label every 3 frames; flow one pair a frame (forward only:
    the temporal run reads forward stacks), the rate and latency reported and saved."""
    path = runs.held_out["blue_down"]
    code, out, err = twostream(capsys, "predict", str(runs.spatial), str(runs.temporal), "--live", str(path),
                               "--every", "3", "--top", "1", "--device", "cpu", "--threads", "1", "--show", "--out",
                               str(tmp_path))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("no display here: --show draws nothing")  # this machine has none
    # labels fall due at frames 4, 7 and 10; the networks score in a thread of their own, and a label
    # due while they are busy is skipped (the file is read as fast as it decodes), never queued
    labels = [x for x in lines if x.startswith("frame ")]
    frames = [x.split(":")[0] for x in labels]
    assert frames[0] == "frame 4" and set(frames) <= {"frame 4", "frame 7", "frame 10"}, labels
    assert all(re.search(r"frame \d+: blue_down \([01]\.\d+\)\s+\[\d+ ms\]$", x) for x in labels), labels
    summary = re.search(r"^12 frames in [\d.]+ s: [\d.]+ frames/s sustained, (\d) label\(s\) \(one due every 3 frames, "
                        r"(\d) skipped while the networks were busy\); latency from frame to label \d+ ms median",
                        lines[-1])
    assert summary and int(summary[1]) == len(labels) and int(summary[1]) + int(summary[2]) == 3, lines[-1]
    saved = json.loads((tmp_path / "live.json").read_text())
    assert saved["frames"] == 12 and saved["frames_per_s"] > 0 and saved["window"] == 5
    assert saved["flow_pairs_computed"] == 11  # one a frame after the first: never a window again
    assert [p["top"][0]["class"] for p in saved["predictions"]] == ["blue_down"] * len(labels)
    capture = cv2.VideoCapture(str(tmp_path / "annotated.avi"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12 and capture.read()[1].shape[1] > 2 * 64
    # an unopenable source is one line
    code, _, err = twostream(capsys, "predict", str(runs.temporal), "--live", str(tmp_path / "none.avi"))
    assert code == 2 and "OpenCV cannot open it" in err and "Traceback" not in err


def test_predict_fuses_as_a_fuse_folder_and_a_fuse_features_run_say(runs, tmp_path, capsys):
    """--fusion FOLDER: the method `twostream fuse` ran (svm, learned: fitted again on the same
    scores, so the fused scores of a video equal fuse's); --fusion RUN: a fuse-features run alone."""
    s, t = str(runs.spatial), str(runs.temporal)
    for run in (s, t):  # the training videos' scores, as test and as fit scores (fuse takes score files)
        assert twostream(capsys, "evaluate", run, "--subset", "train", "--clips", "2", "--crops", "center",
                         "--loader-workers", "0", "--threads", "1")[0] == 0
    fused = tmp_path / "fusion"
    train_scores = [f"{run}/scores_train.npz" for run in (s, t)]
    code, _, err = twostream(capsys, "fuse", *train_scores, "--fit-spatial", train_scores[0], "--fit-temporal",
                             train_scores[1], "--method", "svm", "--method", "average", "--out", str(fused))
    assert code == 0, err
    predictor = Predictor.load(s, t, fusion=fused, fusion_method="svm", clips=2, crops="center", device="cpu")
    assert predictor.fusion.name == "svm" and predictor.score_kind.startswith("linear SVM")
    # videos of the extraction, predicted from their files: fuse's svm scores of them
    from twostream.core.scores import load_scores

    svm = load_scores(fused / "svm.npz")
    index = ExtractionFolder(runs.shards).read_index()
    for video_id, row in list(zip(svm.video_ids, svm.scores))[::3]:
        got = predictor.predict(runs.videos / index[video_id].label_name / f"{video_id}.avi").scores
        np.testing.assert_allclose(got, row, atol=1e-4)
    code, _, err = twostream(capsys, "fuse-features", "train", str(runs.shards), "--spatial", s, "--temporal", t,
                             "--out", str(tmp_path / "mid"), "--epochs", "1", "--val-every", "0", "--loader-workers",
                             "0", "--threads", "1")
    assert code == 0, err
    code, out, err = twostream(capsys, "predict", "--fusion", str(tmp_path / "mid"), str(runs.held_out["red_right"]),
                               "--fast", "--device", "cpu", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["label"] in CLASSES and "mid fusion of resnet18 streams" in err
    # the fusion network exports too: both streams and the head, one input of 3 + 2L channels
    code, _, err = twostream(capsys, "export", str(tmp_path / "mid"), "--out", str(tmp_path / "mid_export"))
    assert code == 0, err
    x = real_inputs(runs, tmp_path / "mid")
    assert x.shape == (10, 3 + 8, 48, 48)
    exported = torch.jit.load(str(tmp_path / "mid_export" / "model.torchscript.pt"))
    np.testing.assert_allclose(exported(x).detach().numpy(), load_scorer(tmp_path / "mid").model(x).detach().numpy(),
                               atol=1e-4, rtol=0)
    contract = json.loads((tmp_path / "mid_export" / "contract.json").read_text())
    assert [p["kind"] for p in contract["input"]["parts"]] == ["RGB frame", "flow stack"]
