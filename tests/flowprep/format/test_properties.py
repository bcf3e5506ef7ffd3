"""Property-based tests (hypothesis) of the pure functions every run's correctness rests on: the
manifest parser (any text is a manifest or a one-line ManifestError, and written manifests read
back as written), the codecs through a real shard (lossless ones exact, JPEG deterministic, any
codec's name parsed back to itself) and the frame sampler (the rule its docstring states).
Quantisation's properties are in test_quantize.py."""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flowprep.extract.frames import FrameSampler
from flowprep.extract.shard_writer import StagedVideo
from flowprep.format.codecs import RAW_FILTERS, Codec, CodecError, parse_codec
from flowprep.format.manifest import SPLIT_VALUES, ManifestEntry, ManifestError, read_manifest, write_manifest
from flowprep.format.shards import VideoAttrs, open_shard, video_reader

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- the manifest parser ------------------------------------------------------------------------------
def _manifest_file(data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="manifest_"))
    (folder / "m.csv").write_bytes(data)
    return folder / "m.csv"


@PROPERTY
@given(data=st.binary(max_size=400) | st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_are_a_manifest_or_a_one_line_manifest_error(data):
    try:
        entries = read_manifest(_manifest_file(data))
    except ManifestError as exc:
        assert "\n" not in str(exc) and "m.csv" in str(exc)
    else:
        assert entries and all(e.label >= 0 and e.video_id and e.path for e in entries)


text_cell = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x00"),
                    min_size=1, max_size=12).map(str.strip).filter(bool)
video_ids = text_cell.filter(lambda v: v not in (".", "..") and not any(c in v for c in "/\\"))
paths = st.lists(text_cell.filter(lambda p: p not in (".", "..") and not any(c in p for c in "/\\:")),
                 min_size=1, max_size=3).map("/".join)


@st.composite
def manifests(draw) -> list[ManifestEntry]:
    names = draw(st.lists(text_cell, min_size=1, max_size=5, unique=True))  # one name per label
    split_columns = draw(st.lists(st.sampled_from(["split1", "split2", "split3"]), unique=True, max_size=3))
    ids = draw(st.lists(video_ids, min_size=1, max_size=8, unique=True))
    entries = []
    for video_id in ids:
        label = draw(st.integers(0, len(names) - 1))
        splits = tuple((c, draw(st.sampled_from(SPLIT_VALUES))) for c in split_columns)
        entries.append(ManifestEntry(video_id, draw(paths), label, names[label], splits))
    return entries


@PROPERTY
@given(entries=manifests())
def test_a_written_manifest_reads_back_as_written(entries):
    path = _manifest_file(b"")
    write_manifest(path, entries)
    assert read_manifest(path) == entries


# --- the codecs, through a real shard -------------------------------------------------------------
codecs = st.one_of(
    st.builds(Codec, st.just("png"), st.integers(0, 9)),
    st.builds(Codec, st.just("jpeg"), st.integers(1, 100)),
    st.builds(lambda f: Codec("raw", None, f), st.sampled_from([f for f in RAW_FILTERS if f != "gzip"])),
    st.builds(lambda level: Codec("raw", level, "gzip"), st.integers(0, 9)),
)


@PROPERTY
@given(codec=codecs)
def test_a_codecs_name_parses_back_to_the_codec(codec):
    assert parse_codec(str(codec)) == codec


@PROPERTY
@given(text=st.text(max_size=20))
def test_any_codec_text_is_a_codec_or_a_codec_error_naming_it(text):
    try:
        codec = parse_codec(text)
    except CodecError as exc:
        assert repr(text) in str(exc) or text in str(exc)
    else:
        assert parse_codec(str(codec)) == codec


def _store(codec: Codec, frames: np.ndarray, fields: np.ndarray) -> Path:
    """frames (T, H, W, 3) BGR and forward fields (T-1, H, W, 2) codes, written as one staged video."""
    folder = Path(tempfile.mkdtemp(prefix="codec_"))
    height, width = frames.shape[1:3]
    video = StagedVideo(folder, "v", width, height, codec, codec, 20.0, "{}")
    for frame in frames:
        video.add_frame(frame)
    for direction in ("forward", "backward"):
        for field in fields:
            video.add_flow(direction, field, np.zeros(2, np.float32))
    return video.commit(VideoAttrs(0, "c", "{}", "v.avi", width, height, 25.0, 25.0, width, height, len(frames), True))


@PROPERTY
@given(codec=codecs, size=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 11)), data=st.data())
def test_stored_frames_and_flow_come_back_exactly_or_as_jpeg_decodes_them(codec, size, data):
    count, height, width = size
    frames = data.draw(arrays(np.uint8, (count + 1, height, width, 3)))
    fields = data.draw(arrays(np.uint8, (count, height, width, 2)))
    with open_shard(_store(codec, frames, fields)) as f:
        video = video_reader(f, "v")
        assert video.num_frames == count + 1
        for i, frame in enumerate(frames):
            rgb = video.rgb(i)
            assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
            if codec.kind != "jpeg":
                np.testing.assert_array_equal(rgb, frame[..., ::-1])
            else:  # JPEG: what is stored is what the codec makes of the frame, byte for byte
                np.testing.assert_array_equal(video.stored_rgb(i), codec.encode(frame))
        for i, field in enumerate(fields):
            codes = video.flow_codes("backward", i)
            assert codes.shape == (height, width, 2)
            if codec.kind != "jpeg":
                np.testing.assert_array_equal(codes, field)


# --- the frame sampler ----------------------------------------------------------------------------
@PROPERTY
@given(source=st.floats(1.0, 240.0), target=st.floats(0.5, 300.0), count=st.integers(1, 400),
       stride=st.integers(1, 4), cap=st.none() | st.integers(1, 50))
def test_the_sampler_keeps_the_first_frame_at_or_after_each_output_time(source, target, count, stride, cap):
    sampler = FrameSampler(source, target_fps=target, stride=stride, max_frames=cap)
    kept = [i for i in range(count) if sampler.keep(i)]
    assert kept[0] == 0 and kept == sorted(set(kept))  # starts at the first frame, in order, no repeats
    assert all(i % stride == 0 for i in kept)
    if cap is not None:
        assert len(kept) <= cap
    if target >= source and stride == 1:  # no upsampling: every frame, none invented
        assert kept == list(range(min(count, cap or count)))
    if stride == 1 and (cap is None or len(kept) < cap):
        # one frame per output slot n / target seconds that the video reaches
        ratio = min(1.0, target / source)
        assert len(kept) == math.floor((count - 1) * ratio + 1e-9) + 1
    assert sampler.output_fps(source) <= source / stride + 1e-9
