"""Reports built from small score and metrics files whose numbers are worked out by hand."""
from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.image import imread

from tests.support.cli import twostream
from twostream.core.scores import VideoScores, load_scores, save_scores
from twostream.engine.metrics_log import MetricsLog, MetricsLogError
from twostream.score_fusion.report import read_curve
from twostream.score_fusion.report_data import ReportError, TableRow, best_row

CLASSES = ("brush", "comb", "dive", "fence")
LABELS = [0, 0, 0, 1, 1, 2, 2, 3]
# spatial: right on videos 0, 1, 3, 4, 5, 7 -> top-1 6/8; per class 2/3, 2/2, 1/2, 1/1
SPATIAL_PRED = [0, 0, 1, 1, 1, 2, 0, 3]
SPATIAL_TOP1, SPATIAL_MEAN_CLASS = 6 / 8, (2 / 3 + 1 + 1 / 2 + 1) / 4
# temporal: right on videos 0, 3, 5, 6, 7 -> top-1 5/8; per class 1/3, 1/2, 2/2, 1/1
TEMPORAL_PRED = [0, 1, 1, 1, 0, 2, 2, 3]
TEMPORAL_TOP1, TEMPORAL_MEAN_CLASS = 5 / 8, (1 / 3 + 1 / 2 + 1 + 1) / 4


def scores_from(predictions: list[int], stream: str, order: list[int] | None = None) -> VideoScores:
    scores = np.full((len(predictions), len(CLASSES)), 0.1, np.float32)
    scores[np.arange(len(predictions)), predictions] = 0.7
    ids = np.array([f"video{i}" for i in range(len(predictions))])
    order = list(range(len(predictions))) if order is None else order
    return VideoScores(ids[order], np.array(LABELS, np.int64)[order], scores[order], CLASSES, {"stream": stream})


def metrics_lines(epochs: int, resumed_at: int | None = None) -> str:
    lines = []
    for epoch in range(epochs):
        for phase in ("train", "val"):
            lines.append({"epoch": epoch, "phase": phase, "loss": 2.0 / (epoch + 1), "accuracy": epoch / epochs,
                          "lr": 0.01 * 0.5 ** epoch, "samples_per_s": 100.0, "time": 10.0 * epoch})
    if resumed_at is not None:  # a crash and resume logs an epoch again; the later line counts
        lines.append({**lines[2 * resumed_at], "loss": 9.0})
    return "".join(json.dumps(line) + "\n" for line in lines)


@pytest.fixture()
def inputs(tmp_path):
    files = {"spatial": tmp_path / "spatial_test.npz", "temporal": tmp_path / "temporal_test.npz",
             "mid": tmp_path / "mid_test.npz", "spatial_metrics": tmp_path / "spatial_metrics.jsonl",
             "temporal_metrics": tmp_path / "temporal_metrics.jsonl"}
    save_scores(files["spatial"], scores_from(SPATIAL_PRED, "spatial"))
    # the temporal file lists the videos in another order: rows are matched by video id
    save_scores(files["temporal"], scores_from(TEMPORAL_PRED, "temporal", order=[7, 6, 5, 4, 3, 2, 1, 0]))
    save_scores(files["mid"], scores_from(LABELS, "mid-fusion"))  # right on every video
    files["spatial_metrics"].write_text(metrics_lines(4, resumed_at=2))
    files["temporal_metrics"].write_text(metrics_lines(3))
    return files


def is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and imread(path).ndim == 3


def test_report_folder_from_score_and_metrics_files(capsys, tmp_path, inputs):
    fusion_dir, report_dir = tmp_path / "fusion", tmp_path / "report"
    assert twostream(capsys, "fuse", str(inputs["spatial"]), str(inputs["temporal"]),
                     "--out", str(fusion_dir))[0] == 0
    code, stdout, stderr = twostream(
        capsys, "report", str(inputs["spatial"]), str(inputs["temporal"]),
        "--fused", str(fusion_dir), "--row", f"mid={inputs['mid']}",
        "--curves", f"spatial={inputs['spatial_metrics']}", "--curves", f"temporal={inputs['temporal_metrics']}",
        "--title", "Tiny test", "--out", str(report_dir))
    assert code == 0, stderr

    table = json.loads((report_dir / "table.json").read_text())
    rows = {r["name"]: r for r in table["rows"]}
    assert list(rows) == ["spatial", "temporal", "average", "weighted", "mid"]
    assert rows["spatial"]["top1"] == pytest.approx(SPATIAL_TOP1)
    assert rows["spatial"]["mean_class_accuracy"] == pytest.approx(SPATIAL_MEAN_CLASS)
    assert rows["temporal"]["top1"] == pytest.approx(TEMPORAL_TOP1)
    assert rows["temporal"]["mean_class_accuracy"] == pytest.approx(TEMPORAL_MEAN_CLASS)
    for name in ("average", "weighted"):  # from the fused files themselves
        fused = load_scores(fusion_dir / f"{name}.npz")
        assert rows[name]["top1"] == pytest.approx(np.mean(fused.scores.argmax(axis=1) == fused.labels))
        assert rows[name]["kind"] == "fusion"
    assert rows["mid"] == {**rows["mid"], "top1": 1.0, "mean_class_accuracy": 1.0, "kind": "extra"}
    assert table["best"] == "mid"

    pngs = ["confusion.png", "per_class.png", "curves_spatial.png", "curves_temporal.png"]
    assert all(is_png(report_dir / name) for name in pngs)
    page = (report_dir / "report.md").read_text()
    assert page.startswith("# Tiny test")
    assert all(f"]({name})" in page for name in pngs)
    assert f"| spatial | stream | {100 * SPATIAL_TOP1:.1f} | {100 * SPATIAL_MEAN_CLASS:.1f} | 8 |" in page
    assert "| **mid** | extra | 100.0 | 100.0 | 8 |" in page
    assert "+25.0 points over the best single stream, spatial" in page
    text = (report_dir / "table.txt").read_text()
    assert text.strip() in stdout
    assert "mid" in text.splitlines()[-1] and "<- best" in text.splitlines()[-1]


def test_report_without_curves_says_so(capsys, tmp_path, inputs):
    code, _, _ = twostream(capsys, "report", str(inputs["spatial"]), str(inputs["temporal"]),
                           "--out", str(tmp_path / "r"))
    assert code == 0
    assert not list((tmp_path / "r").glob("curves_*.png"))
    assert "No training metrics were given" in (tmp_path / "r" / "report.md").read_text()
    assert json.loads((tmp_path / "r" / "table.json").read_text())["best"] == "spatial"


@pytest.mark.parametrize("case, expected", [
    ("other videos", "score different videos"),
    ("same name", "two rows named 'spatial'"),
    ("bad curves", "line 2: not JSON"),
    ("bad name", "row name 'a/b' must be letters"),
])
def test_report_errors_are_one_line_naming_the_file(capsys, tmp_path, inputs, case, expected):
    other = tmp_path / "other.npz"
    save_scores(other, VideoScores(np.array(["x", "y"]), np.array([0, 1]), np.eye(4, dtype=np.float32)[:2], CLASSES))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(metrics_lines(1).splitlines()[0] + "\n{oops\n")
    extra = {"other videos": ["--row", f"odd={other}"], "same name": ["--row", f"spatial={inputs['mid']}"],
             "bad curves": ["--curves", f"spatial={bad}"], "bad name": ["--row", f"a/b={inputs['mid']}"]}[case]
    code, _, stderr = twostream(capsys, "report", str(inputs["spatial"]), str(inputs["temporal"]),
                                "--out", str(tmp_path / "r"), *extra)
    assert code == 2
    assert expected in stderr and stderr.count("\n") == 1
    if case == "other videos":
        assert str(other) in stderr and str(inputs["spatial"]) in stderr
    if case == "bad curves":
        assert str(bad) in stderr


def test_metrics_keep_the_last_record_of_a_resumed_epoch(tmp_path):
    (tmp_path / "m.jsonl").write_text(metrics_lines(4, resumed_at=2))
    points = read_curve(tmp_path / "m.jsonl")
    assert len(points) == 8
    assert [p.loss for p in points if p.phase == "train"] == [2.0, 1.0, 9.0, 0.5]


@pytest.mark.parametrize("line, expected", [
    ('{"epoch": 0, "phase": "train", "loss": 1.0}', "m.jsonl line 2: lacks accuracy"),
    ('{"epoch": "first", "phase": "train", "loss": 1.0, "accuracy": 0.5}', "m.jsonl line 2: epoch must be an integer"),
    ("[1, 2]", "m.jsonl line 2: expected a JSON object"),
    ("{oops", "m.jsonl line 2: not JSON"),
])
def test_bad_metrics_lines_are_named_by_the_log_and_the_report(tmp_path, line, expected):
    """The format's owner (MetricsLog.read) names the file and line; the report says the same."""
    path = tmp_path / "m.jsonl"
    path.write_text("\n" + line + "\n")  # a blank first line is skipped, but counted
    with pytest.raises(MetricsLogError, match=expected) as raised:
        MetricsLog.read(path)
    assert str(raised.value).startswith(f"{path} line 2: ") and "\n" not in str(raised.value)
    with pytest.raises(ReportError, match=expected):
        read_curve(path)


@pytest.mark.parametrize("text, expected", [("", "m.jsonl: no metrics records"), (None, "m.jsonl: metrics file not found")])
def test_an_empty_or_missing_metrics_file_is_named(tmp_path, text, expected):
    path = tmp_path / "m.jsonl"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ReportError, match=expected):
        read_curve(path)


def test_metrics_log_reads_what_it_wrote(tmp_path):
    log = MetricsLog(tmp_path)
    log.restart(0)
    log.write(1, "train", 2.5, 0.25, 0.01, 100.0, 3.0)
    log.write(1, "val", 2.0, 0.5, 0.01, 200.0, 4.0)
    assert MetricsLog.read(log.path) == [
        {"epoch": 1, "phase": "train", "loss": 2.5, "accuracy": 0.25, "lr": 0.01, "samples_per_s": 100.0, "time": 3.0},
        {"epoch": 1, "phase": "val", "loss": 2.0, "accuracy": 0.5, "lr": 0.01, "samples_per_s": 200.0, "time": 4.0}]


def test_best_row_prefers_top1_then_mean_class_then_the_earlier_row():
    rows = [TableRow("a", "stream", "", 8, 0.5, 0.4), TableRow("b", "fusion", "", 8, 0.5, 0.6),
            TableRow("c", "fusion", "", 8, 0.5, 0.6)]
    assert best_row(rows).name == "b"
    assert best_row(rows + [TableRow("d", "extra", "", 8, 0.6, 0.1)]).name == "d"


# --- the pictures answer (issue 26): checked by what they draw ---------------------------------------
def test_a_confusion_matrix_for_each_stream_and_the_best_fusion(capsys, tmp_path, inputs):
    fused = tmp_path / "average.npz"
    save_scores(fused, scores_from([0, 0, 0, 1, 1, 2, 0, 3], "average"))  # 7/8: beats both streams, is the best row
    code, _, err = twostream(capsys, "report", str(inputs["spatial"]), str(inputs["temporal"]), "--fused", str(fused),
                             "--out", str(tmp_path / "r"))
    assert code == 0, err
    page = (tmp_path / "r" / "report.md").read_text()
    for title, file in (("average (best)", "confusion.png"), ("spatial (stream)", "confusion_spatial.png"),
                        ("temporal (stream)", "confusion_temporal.png")):
        assert f"## Confusion matrix: {title}\n\n![Confusion matrix: {title}]({file})" in page
        assert is_png(tmp_path / "r" / file)


def test_per_class_bars_give_counts_and_show_zeros():
    from twostream.engine.metrics import confusion_matrix
    from twostream.score_fusion.report_plots import ZERO_MARK, per_class_figure

    labels = np.array(LABELS)
    never_fence = [0, 0, 0, 1, 1, 2, 2, 0]  # class 3 (fence) never right: 0 %
    matrices = {name: confusion_matrix(labels, np.array(pred), 4) for name, pred in
                (("spatial", SPATIAL_PRED), ("temporal", TEMPORAL_PRED), ("average", never_fence))}
    ax = per_class_figure(CLASSES, matrices, "t").axes[0]
    bars = {name: container for name, container in zip(matrices, ax.containers)}
    assert [b.get_height() for b in bars["spatial"]] == pytest.approx([2 / 3, 1, 1 / 2, 1])
    zero = bars["average"][3]
    assert zero.get_height() == ZERO_MARK > 0 and zero.get_hatch() == "////"  # a zero is drawn, not a gap
    assert [t.get_text() for t in ax.get_xticklabels()] == ["brush (3)", "comb (2)", "dive (2)", "fence (1)"]
    counts = [t.get_text() for t in ax.texts]
    assert counts == ["2", "2", "1", "1", "1", "1", "2", "1", "3", "2", "2", "0"]  # right videos, bar by bar
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["spatial", "temporal", "average"]
    assert not any(h.get_hatch() for h in ax.get_legend().legend_handles)  # a row's colour, not its 0 % stub


def test_curves_name_clip_accuracy_and_the_validation_videos_and_draw_one_learning_rate():
    from twostream.score_fusion.report_data import CurvePoint
    from twostream.score_fusion.report_plots import curves_figure

    points = [CurvePoint(e, "train", 1.0 / e, 0.2 * e, 0.01) for e in (1, 2, 3)]
    points += [CurvePoint(e, "val", 1.5 / e, 0.1 * e, 0.01, "held-out") for e in (1, 2, 3)]
    fig = curves_figure(points, "spatial stream")
    loss, accuracy, lr = fig.axes
    assert "clip accuracy" in accuracy.get_ylabel()
    assert [t.get_text() for t in accuracy.get_legend().get_texts()] == ["train (running, its sampled clips)",
                                                                        "validation (held-out videos)"]
    assert len(lr.lines) == 1 and lr.get_legend() is None  # the schedule, not a train and a val line
    assert list(lr.lines[0].get_xdata()) == [1, 2, 3]
    assert "per video" in fig._suptitle.get_text()


def test_the_page_says_when_fusion_does_not_help():
    from twostream.score_fusion.report_data import fusion_sentence

    spatial = TableRow("spatial", "stream", "s", 8, 0.75, 0.7)
    temporal = TableRow("temporal", "stream", "t", 8, 0.5, 0.5)
    worse = TableRow("average", "fusion", "a", 8, 0.625, 0.6)
    assert fusion_sentence([spatial, temporal, worse]) == (
        "Fusion does not help here: the best single stream, spatial (75.0 %), beats every fusion; the best, average, "
        "is 12.5 points lower.")
    tie = TableRow("average", "fusion", "a", 8, 0.75, 0.6)
    assert "ties the best single stream, spatial, at 75.0 %" in fusion_sentence([spatial, temporal, tie])
    better = TableRow("svm", "fusion", "v", 8, 1.0, 1.0)
    assert fusion_sentence([spatial, temporal, better]) == (
        "The best fusion, svm, is +25.0 points over the best single stream, spatial.")


def test_an_old_run_that_validated_on_its_test_videos_is_named_so(tmp_path):
    """Metrics written before val lines named their videos: a run of that time with holdout 0
    validated on its test videos (config.json has no val_on_test), and the report says so."""
    from twostream.score_fusion.report_data import validated_on_test

    run = tmp_path / "old"
    run.mkdir()
    (run / "metrics.jsonl").write_text(metrics_lines(2))
    (run / "config.json").write_text(json.dumps({"holdout": 0.0, "val_every": 1, "stream": "spatial"}))
    assert {p.subset for p in read_curve(run / "metrics.jsonl") if p.phase == "val"} == {"test"}
    assert "validated on the test videos during training" in validated_on_test("spatial", read_curve(run / "metrics.jsonl"))
    (run / "config.json").write_text(json.dumps({"holdout": 0.25, "val_every": 1}))  # held out: not the test set
    assert validated_on_test("spatial", read_curve(run / "metrics.jsonl")) is None
