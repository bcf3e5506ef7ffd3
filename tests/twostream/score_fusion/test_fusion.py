"""Score-level fusion on hand-made score arrays whose right answer is known, and `twostream fuse`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.cli import twostream
from twostream.core.scores import VideoScores, load_scores, save_scores
from twostream.score_fusion.rules import (
    FUSION_RULES,
    FusionError,
    FusionParams,
    choose_temporal_share,
    fit_and_fuse,
    get_fusion_rule,
    pair_streams,
    stacked_l2,
    weighted_average,
)

C = 8


def scores_of(scores: np.ndarray, labels: np.ndarray, prefix: str = "v", stream: str = "spatial") -> VideoScores:
    ids = np.array([f"{prefix}{i:04d}" for i in range(len(labels))])
    return VideoScores(ids, np.asarray(labels, np.int64), np.asarray(scores, np.float32),
                       tuple(f"class{c}" for c in range(scores.shape[1])), {"stream": stream, "split": "split1"})


def softmax_like(rng: np.random.Generator, n: int, peaks: list[dict[int, float]]) -> np.ndarray:
    """Rows of probabilities: mass on the given classes plus a little noise everywhere."""
    out = rng.uniform(0, 0.02, size=(n, C))
    for i, peak in enumerate(peaks):
        for c, mass in peak.items():
            out[i, c] += mass
    return out / out.sum(axis=1, keepdims=True)


def halves(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spatial right (confident) on classes 0-3 and unsure-and-wrong on 4-7; temporal the other way."""
    labels = rng.integers(0, C, size=n)

    def stream(good: range) -> np.ndarray:
        peaks = []
        for y in labels:
            wrong = int((y + 1 + rng.integers(C - 1)) % C)
            peaks.append({int(y): 0.7} if y in good else {wrong: 0.25, int(y): 0.2})
        return softmax_like(rng, n, peaks)

    return stream(range(0, 4)), stream(range(4, 8)), labels


def factorial(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The demo's structure: class = 4 * appearance + motion; spatial is sure of the appearance
    and spread evenly over its 4 motions, temporal sure of the motion and spread over 2 appearances."""
    labels = rng.integers(0, C, size=n)
    spatial = softmax_like(rng, n, [{4 * (y // 4) + m: 0.25 for m in range(4)} for y in labels])
    temporal = softmax_like(rng, n, [{4 * a + y % 4: 0.5 for a in range(2)} for y in labels])
    return spatial, temporal, labels


def shifted(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linearly separable from the stacked scores, but every stream and every average is wrong:
    spatial peaks at class y+1, temporal at y+3 (mod C)."""
    labels = rng.integers(0, C, size=n)
    spatial = softmax_like(rng, n, [{int((y + 1) % C): 0.8} for y in labels])
    temporal = softmax_like(rng, n, [{int((y + 3) % C): 0.8} for y in labels])
    return spatial, temporal, labels


def pair_of(spatial, temporal, labels, prefix="v"):
    return pair_streams(scores_of(spatial, labels, prefix), scores_of(temporal, labels, prefix, "temporal"))


def accuracy(scores: VideoScores) -> float:
    return float((scores.scores.argmax(axis=1) == scores.labels).mean())


@pytest.mark.parametrize("method", list(FUSION_RULES))
@pytest.mark.parametrize("make", [halves, factorial], ids=["halves", "factorial"])
def test_every_method_beats_both_streams_when_they_are_complementary(method, make):
    rng = np.random.default_rng(1)
    test = pair_of(*make(rng, 400))
    fit = pair_of(*make(rng, 400), prefix="f")
    fused = fit_and_fuse(method, test, fit, FusionParams())
    best_stream = max(accuracy(test.spatial), accuracy(test.temporal))
    assert best_stream < 0.65
    assert accuracy(fused) > 0.95
    assert fused.meta["fusion_method"] == method
    np.testing.assert_array_equal(fused.video_ids, test.spatial.video_ids)


@pytest.mark.parametrize("method", ["svm", "logreg"])
def test_learned_methods_separate_what_no_average_can(method):
    rng = np.random.default_rng(2)
    test, fit = pair_of(*shifted(rng, 300)), pair_of(*shifted(rng, 300), prefix="f")
    assert accuracy(fit_and_fuse(method, test, fit, FusionParams())) == 1.0
    assert accuracy(fit_and_fuse("average", test, None, FusionParams())) < 0.05


def test_svm_features_are_each_stream_l2_normalised_then_stacked():
    s, t = np.array([[3.0, 4.0]]), np.array([[0.0, 2.0]])
    np.testing.assert_allclose(stacked_l2(s, t), [[0.6, 0.8, 0.0, 1.0]])


def binary_pair(prefix: str, n_each: int = 20):
    """Two kinds of videos (true class 0): kind A is right only if the temporal share w > 0.6,
    kind B only if w < 0.8: the best weights lie strictly between, and averaging (w = 0.5) misses A."""
    a_s, a_t = [0.2, 0.8], [0.7, 0.3]  # (1-w)(-0.6) + w(0.4) > 0  <=>  w > 0.6
    b_s, b_t = [0.9, 0.1], [0.4, 0.6]  # (1-w)(0.8) + w(-0.2) > 0  <=>  w < 0.8
    spatial = np.array([a_s] * n_each + [b_s] * n_each)
    temporal = np.array([a_t] * n_each + [b_t] * n_each)
    labels = np.zeros(2 * n_each, np.int64)
    return pair_streams(scores_of(spatial, labels, prefix), scores_of(temporal, labels, prefix, "temporal"))


def test_weight_chosen_on_fit_scores_is_the_middle_of_the_best_range():
    fit, test = binary_pair("f"), binary_pair("t")
    fused = fit_and_fuse("weighted-val", test, fit, FusionParams(weight_steps=21))
    assert fused.meta["learned"]["temporal_share"] == pytest.approx(0.7)  # grid 0.65, 0.70, 0.75 are best
    assert accuracy(fused) == 1.0
    assert accuracy(fit_and_fuse("average", test, None, FusionParams())) == 0.5
    for share in (0.0, 1.0):
        assert accuracy(fit_and_fuse("weighted", test, None, FusionParams(weights=(1 - share, share)))) == 0.5


def test_given_weights_are_applied():
    fused = fit_and_fuse("weighted", binary_pair("t"), None, FusionParams(weights=(1.0, 3.0)))  # share 0.75
    assert fused.meta["learned"]["temporal_share"] == 0.75
    assert accuracy(fused) == 1.0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 6), st.integers(1, 40))
def test_chosen_weight_is_never_worse_on_the_fit_scores_than_either_stream(seed, classes, n):
    rng = np.random.default_rng(seed)
    s, t = rng.dirichlet(np.ones(classes), size=n), rng.dirichlet(np.ones(classes), size=n)
    labels = rng.integers(0, classes, size=n)
    share, acc = choose_temporal_share(s, t, labels, 11)
    assert 0.0 <= share <= 1.0
    assert acc == pytest.approx(np.mean(weighted_average(s, t, share).argmax(axis=1) == labels))
    assert acc >= max(np.mean(s.argmax(axis=1) == labels), np.mean(t.argmax(axis=1) == labels))


def test_a_class_missing_from_the_fit_scores_is_never_predicted():
    rng = np.random.default_rng(3)
    s, t, y = factorial(rng, 300)
    keep = y != 5
    fit = pair_of(s[keep], t[keep], y[keep], "f")
    test = pair_of(*factorial(rng, 200))
    for method in ("svm", "logreg"):
        fused = fit_and_fuse(method, test, fit, FusionParams())
        assert fused.scores.shape == (200, C)
        assert 5 not in fused.scores.argmax(axis=1)
        assert accuracy(fused) > 0.8  # right on everything but class 5


def test_learned_methods_refuse_to_run_without_fit_scores():
    test = pair_of(*factorial(np.random.default_rng(0), 20))
    for name, method in FUSION_RULES.items():
        if method.needs_fit:
            with pytest.raises(FusionError, match="learns from scores of training-split videos"):
                fit_and_fuse(name, test, None, FusionParams())
        else:
            assert fit_and_fuse(name, test, None, FusionParams()).scores.shape == (20, C)


def test_unknown_method_lists_the_choices():
    with pytest.raises(FusionError) as info:
        get_fusion_rule("max")
    assert "'max'" in str(info.value) and all(name in str(info.value) for name in FUSION_RULES)


@pytest.mark.parametrize("kwargs, match", [
    ({"weights": (-1.0, 1.0)}, "weights"), ({"weights": (0.0, 0.0)}, "weights"),
    ({"weight_steps": 1}, "weight steps"), ({"svm_c": 0.0}, "svm_c"), ({"logreg_c": -2.0}, "logreg_c")])
def test_bad_params_are_refused_naming_the_value(kwargs, match):
    with pytest.raises(FusionError, match=match):
        FusionParams(**kwargs)


# --- aligning the two streams ------------------------------------------------------------------
def test_streams_are_aligned_by_video_id():
    rng = np.random.default_rng(4)
    s, t, y = factorial(rng, 30)
    spatial = scores_of(s, y)
    order = rng.permutation(30)
    temporal = VideoScores(spatial.video_ids[order], spatial.labels[order], t[order].astype(np.float32), spatial.class_names)
    pair = pair_streams(spatial, temporal)
    np.testing.assert_array_equal(pair.temporal.video_ids, spatial.video_ids)
    np.testing.assert_allclose(pair.temporal.scores, t.astype(np.float32))


def test_each_score_file_must_hold_the_stream_of_its_place():
    """`twostream fuse runs/sp runs/sp` and swapped runs were fused with exit 0 before (issue 30,
    item 10): the files record their stream, and fusion names and weights the streams by place."""
    rng = np.random.default_rng(6)
    s, t, y = factorial(rng, 10)
    spatial, temporal = scores_of(s, y), scores_of(t, y, stream="temporal")
    for pair, expected in (((spatial, spatial), "both hold spatial scores"), ((temporal, spatial), "swapped"),
                           ((spatial, scores_of(t, y)), "both hold spatial"),
                           ((temporal, scores_of(t, y, stream="clip")), "holds temporal scores, given as the spatial")):
        with pytest.raises(FusionError, match=expected):
            pair_streams(*pair, "runs/a.npz", "runs/b.npz")
    pair_streams(spatial, temporal)
    pair_streams(spatial, scores_of(t, y, stream="clip"))  # another kind of stream may stand in
    unrecorded = VideoScores(spatial.video_ids, spatial.labels, t.astype(np.float32), spatial.class_names)
    pair_streams(spatial, unrecorded)  # an older file that does not say


def test_mismatched_streams_are_refused_naming_both_files():
    rng = np.random.default_rng(5)
    s, t, y = factorial(rng, 10)
    spatial = scores_of(s, y)
    cases = {
        "different videos": scores_of(t, y, prefix="w", stream="temporal"),
        "classes vs": scores_of(t[:, :6], y % 6, stream="temporal"),
        "disagree on the labels": scores_of(t, (y + 1) % C, stream="temporal"),
        "more than once": VideoScores(np.array(["v0000"] * 10), y, t.astype(np.float32), spatial.class_names),
        "class 0 is": VideoScores(spatial.video_ids, y, t.astype(np.float32), ("x",) + spatial.class_names[1:]),
    }
    for expected, temporal in cases.items():
        with pytest.raises(FusionError) as info:
            pair_streams(spatial, temporal, "runs/s.npz", "runs/t.npz")
        message = str(info.value)
        assert expected in message and "\n" not in message
        assert "runs/t.npz" in message
        if expected != "more than once":
            assert "runs/s.npz" in message


# --- the command -------------------------------------------------------------------------------
@pytest.fixture()
def score_files(tmp_path):
    rng = np.random.default_rng(6)
    files = {}
    for part, n in (("test", 160), ("val", 160)):
        s, t, y = factorial(rng, n)
        files[f"spatial_{part}"] = tmp_path / f"spatial_{part}.npz"
        files[f"temporal_{part}"] = tmp_path / f"temporal_{part}.npz"
        save_scores(files[f"spatial_{part}"], scores_of(s, y, part))
        save_scores(files[f"temporal_{part}"], scores_of(t, y, part, "temporal"))
    files["missing"] = tmp_path / "missing.npz"
    return files


def test_fuse_command_writes_fused_scores_and_results(capsys, tmp_path, score_files):
    out = tmp_path / "fusion"
    code, stdout, _ = twostream(capsys, "fuse", str(score_files["spatial_test"]),
                                str(score_files["temporal_test"]),
                                "--fit-spatial", str(score_files["spatial_val"]),
                                "--fit-temporal", str(score_files["temporal_val"]), "--out", str(out))
    assert code == 0
    results = json.loads((out / "fusion.json").read_text())
    assert [m["name"] for m in results["methods"]] == list(FUSION_RULES)
    assert results["skipped"] == [] and results["warnings"] == []
    spatial = load_scores(score_files["spatial_test"])
    assert results["streams"][0]["top1"] == pytest.approx(accuracy(spatial))
    for record in results["methods"]:
        fused = load_scores(out / record["file"])
        assert record["top1"] == pytest.approx(accuracy(fused))
        assert record["top1"] > 0.95
        assert fused.meta["inputs"]["fit_spatial"] == str(score_files["spatial_val"])
        assert f"{100 * record['top1']:.1f}" in stdout


def test_fuse_command_without_fit_scores_runs_the_fixed_methods_and_says_what_it_skipped(capsys, tmp_path, score_files):
    out = tmp_path / "fusion"
    code, stdout, _ = twostream(capsys, "fuse", str(score_files["spatial_test"]),
                                str(score_files["temporal_test"]), "--ratio", "1:2", "--out", str(out))
    assert code == 0
    assert sorted(p.name for p in out.glob("*.npz")) == ["average.npz", "weighted.npz"]
    assert "skipped weighted-val, svm, logreg" in stdout
    assert load_scores(out / "weighted.npz").meta["learned"]["weights"] == [1.0, 2.0]


def test_fuse_command_warns_when_fit_scores_look_like_the_streams_training_videos(capsys, tmp_path, score_files):
    rng = np.random.default_rng(7)
    y = rng.integers(0, C, size=100)
    perfect = softmax_like(rng, 100, [{int(c): 0.9} for c in y])
    save_scores(tmp_path / "s_train.npz", scores_of(perfect, y, "tr"))
    save_scores(tmp_path / "t_train.npz", scores_of(perfect, y, "tr", "temporal"))
    code, stdout, _ = twostream(capsys, "fuse", str(score_files["spatial_test"]),
                                str(score_files["temporal_test"]), "--method", "svm",
                                "--fit-spatial", str(tmp_path / "s_train.npz"), "--fit-temporal", str(tmp_path / "t_train.npz"),
                                "--out", str(tmp_path / "fusion"))
    assert code == 0
    assert "warning: the spatial stream is 100% accurate on the fit videos" in stdout


@pytest.mark.parametrize("temporal, args, expected", [
    ("temporal_test", ["--method", "svm"], "give --fit-spatial and --fit-temporal"),
    ("temporal_test", ["--method", "max"], "'max' is not one of 'average', 'weighted', 'weighted-val', 'svm', 'logreg'"),
    ("temporal_test", ["--ratio", "1-2"], "expected SPATIAL:TEMPORAL"),
    ("temporal_test", ["--fit-spatial", "x.npz"], "got only --fit-spatial"),
    ("temporal_val", [], "score different videos"),
    ("missing", [], "does not exist; expected a run folder or a scores file"),
])
def test_fuse_command_errors_are_one_line(capsys, tmp_path, score_files, temporal, args, expected):
    code, stdout, stderr = twostream(capsys, "fuse", str(score_files["spatial_test"]),
                                     str(score_files[temporal]), "--out", str(tmp_path / "o"), *args)
    assert code == 2
    assert expected in stderr and stderr.count("\n") == 1 and stderr.startswith("twostream: error: ")
    if temporal == "temporal_val":
        assert str(score_files["spatial_test"]) in stderr and str(score_files[temporal]) in stderr


@pytest.mark.parametrize("part, warned", [("train", True), ("val", False)])
def test_the_fit_scores_part_decides_the_warning_where_it_is_recorded(tmp_path, score_files, part, warned):
    # evaluate records which part it scored: 'train' always warns (the streams saw those videos),
    # 'val' never does, however large the gap (a few dozen held-out videos scatter widely)
    from twostream.score_fusion.run import load_pair, overfit_warnings

    test = load_pair(score_files["spatial_test"], score_files["temporal_test"])
    rng = np.random.default_rng(8)
    y = rng.integers(0, C, size=100)
    perfect = softmax_like(rng, 100, [{int(c): 0.9} for c in y])
    for stream in ("spatial", "temporal"):
        scores = scores_of(perfect, y, "fit", stream)
        save_scores(tmp_path / f"{stream}.npz", VideoScores(scores.video_ids, scores.labels, scores.scores,
                                                           scores.class_names, {**scores.meta, "part": part}))
    fit = load_pair(tmp_path / "spatial.npz", tmp_path / "temporal.npz")
    assert bool(overfit_warnings(fit, test)) == warned
