"""Bad input: every kind of bad (or unusual) video, bad manifests, bad arguments."""
from __future__ import annotations

import shutil
import struct
import wave
from pathlib import Path

import cv2
import numpy as np

from flowprep.format.folder import ExtractionFolder
from flowprep.format.shards import open_shard, video_reader
from tests.support.cli import FLOWPREP, TWOSTREAM, run
from tests.support.reliability.common import SIZE, Record, one_line
from tests.support.videos import moving_square_frames, write_video


def make_bad_videos(root: Path) -> dict[str, tuple[str, str]]:
    """{kind: (file name, expected: 'failure' or 'extracted')}: every kind of bad (or just unusual)
    video, written into `root`."""
    root.mkdir(parents=True, exist_ok=True)
    good = moving_square_frames(12, SIZE[0], SIZE[1], 24, velocity=(1, 0))
    write_video(root / "good.avi", good)
    (root / "zero.avi").write_bytes(b"")
    (root / "random.avi").write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    write_video(root / "whole.avi", moving_square_frames(30, SIZE[0], SIZE[1], 24, velocity=(1, 0)), fourcc="MJPG")
    data = (root / "whole.avi").read_bytes()
    (root / "truncated.avi").write_bytes(data[: len(data) // 2])
    # MPEG-4 part 2 (UCF101's codec) with 2,000 random bytes over its middle: every frame but a
    # few decodes, with no error from OpenCV; FFmpeg's decoder reports the damage (issue 30)
    write_video(root / "mpeg4.avi", moving_square_frames(60, 160, 120, 32, velocity=(1, 0)), fourcc="FMP4")
    data = bytearray((root / "mpeg4.avi").read_bytes())
    middle = len(data) // 2
    data[middle - 1000:middle + 1000] = np.random.default_rng(0).bytes(2000)
    (root / "damaged.avi").write_bytes(bytes(data))
    (root / "mpeg4.avi").unlink()
    (root / "text.avi").write_text("this is not a video\n" * 100)
    with wave.open(str(root / "audio.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(8000, np.int16).tobytes())
    (root / "audio.wav").rename(root / "audio_only.mp4")
    write_video(root / "one_frame.avi", good[:1])
    write_video(root / "huge_8k.avi", [np.full((4320, 7680, 3), 90 + 20 * i, np.uint8) for i in range(3)],
                fourcc="MJPG")
    write_vfr_mp4(root / "variable_rate.mp4", good)
    write_rotated_mp4(root / "rotated.mp4", good)
    odd = root / "a folder with spaces" / "vidéo ünïcode.avi"
    odd.parent.mkdir(exist_ok=True)
    write_video(odd, good)
    return {"zero bytes": ("zero.avi", "failure"), "random bytes": ("random.avi", "failure"),
            "truncated mid-stream": ("truncated.avi", "failure"),
            "random bytes over the middle of an MPEG-4 stream": ("damaged.avi", "failure"),
            "text renamed .avi": ("text.avi", "failure"),
            "audio only": ("audio_only.mp4", "failure"), "one frame": ("one_frame.avi", "failure"),
            "8K resolution": ("huge_8k.avi", "extracted"), "variable frame rate": ("variable_rate.mp4", "extracted"),
            "rotated (phone) video": ("rotated.mp4", "extracted"),
            "path with spaces and non-ASCII": (odd.relative_to(root).as_posix(), "extracted"),
            "missing file": ("nowhere.avi", "failure")}


def _mp4(path: Path, frames: list[np.ndarray]) -> bytearray:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return bytearray(path.read_bytes())


def _box_path(data: bytearray, names: list[bytes]) -> list[int]:
    """Offsets of the nested boxes `names` (e.g. moov, trak, ..., stts) of an MP4 file."""
    offsets, start, end = [], 0, len(data)
    for name in names:
        while start < end:
            size, kind = struct.unpack_from(">I4s", data, start)
            if kind == name:
                offsets.append(start)
                start, end = start + 8, start + size
                break
            start += size
        else:
            raise ValueError(f"no {name!r} box")
    return offsets


def write_vfr_mp4(path: Path, frames: list[np.ndarray]) -> None:
    """An MP4 whose frames last half and one and a half frame periods in turn: a variable frame
    rate, the same total duration (the edit list keeps it). The sample durations are rewritten;
    the moov box, which FFmpeg writes after the frames, grows. An even number of frames."""
    data = _mp4(path, frames)
    boxes = _box_path(data, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stts"])
    stts = boxes[-1]
    size = struct.unpack_from(">I", data, stts)[0]
    count, delta = struct.unpack_from(">II", data, stts + 16)
    entries = b"".join(struct.pack(">II", 1, delta // 2 if i % 2 == 0 else delta * 3 // 2) for i in range(count))
    body = struct.pack(">4sI", b"stts", 0) + struct.pack(">I", count) + entries
    grown = 4 + len(body) - size
    data[stts:stts + size] = struct.pack(">I", 4 + len(body)) + body
    for offset in boxes[:-1]:  # every box around stts grows as much
        struct.pack_into(">I", data, offset, struct.unpack_from(">I", data, offset)[0] + grown)
    path.write_bytes(bytes(data))


def write_rotated_mp4(path: Path, frames: list[np.ndarray]) -> None:
    """An MP4 with a 90-degree display matrix, as phones write them."""
    data = _mp4(path, frames)
    i = data.find(b"tkhd")
    version = data[i + 4]
    matrix = i + 4 + 4 + (32 if version == 1 else 20) + 8 + 8
    struct.pack_into(">9i", data, matrix, 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))


def bad_videos(work: Path) -> list[Record]:
    """Every bad video in one manifest beside a good one: each bad one a failures record with a
    one-line reason, each unusual one extracted, the good one extracted, exit status 3."""
    root = work / "bad_videos"
    shutil.rmtree(root, ignore_errors=True)
    kinds = make_bad_videos(root)
    rows = ["video_id,path,label", "good,good.avi,0"]
    rows += [f"b{i},{name},0" for i, (name, _) in enumerate(kinds.values())]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = work / "bad_out"
    shutil.rmtree(out, ignore_errors=True)
    result = run([*FLOWPREP, "extract", "--manifest", root / "manifest.csv", "--out", out, "--flow", "farneback",
                  "--short-side", "64", "--workers", "2"])
    folder = ExtractionFolder(out)
    index = folder.read_index() if folder.index_path.exists() else {}
    failures = {f.video_id: f.reason for f in folder.read_failures()}
    no_traceback = "Traceback" not in result.stderr and result.returncode == 3
    records = []
    for i, (kind, (_, expected)) in enumerate(kinds.items()):
        vid = f"b{i}"
        if expected == "failure":
            reason = failures.get(vid, "")
            held = vid not in index and bool(reason) and "\n" not in reason and no_traceback
            records.append(Record("bad video", kind, held, reason[:160] or "no failure record"))
        else:
            held = vid in index and vid not in failures and no_traceback
            records.append(Record("bad video", kind, held, "extracted" if held else failures.get(vid, "not extracted")))
    records.append(Record("bad video", "a good video beside them", "good" in index, "extracted",
                          videos_lost=0 if "good" in index else 1))
    records.append(no_frame_rate_with_fps(root, work / "no_rate_out"))
    return records


def write_zero_rate_avi(path: Path, frames: list[np.ndarray]) -> None:
    """An AVI whose headers state no frame rate (0 microseconds a frame, a rate of 0)."""
    write_video(path, frames, fourcc="MJPG")
    data = bytearray(path.read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    struct.pack_into("<I", data, avih + 8, 0)  # dwMicroSecPerFrame
    struct.pack_into("<I", data, strh + 8 + 24, 0)  # dwRate (after type, handler, flags, priority, language, ...)
    path.write_bytes(bytes(data))


def no_frame_rate_with_fps(root: Path, out: Path) -> Record:
    """`--fps` on a video whose headers state no frame rate: FFmpeg assumes 25 fps, which the
    shard records as the source rate; where a backend reports none at all, the video is a
    failures record (unit-tested: test_fps_on_a_video_without_a_frame_rate_is_that_videos_failure).
    Either way: no traceback, and the good video beside it extracted."""
    write_zero_rate_avi(root / "no_rate.avi", moving_square_frames(12, SIZE[0], SIZE[1], 24, velocity=(1, 0)))
    (root / "no_rate.csv").write_text("video_id,path,label\ngood,good.avi,0\nno_rate,no_rate.avi,0\n")
    shutil.rmtree(out, ignore_errors=True)
    result = run([*FLOWPREP, "extract", "--manifest", root / "no_rate.csv", "--out", out, "--flow", "farneback",
                  "--short-side", "64", "--fps", "10", "--workers", "2"])
    folder = ExtractionFolder(out)
    index = folder.read_index() if folder.index_path.exists() else {}
    failures = {f.video_id: f.reason for f in folder.read_failures()}
    accounted = ("no_rate" in index) != ("no_rate" in failures)
    held = "good" in index and accounted and "Traceback" not in result.stderr and result.returncode in (0, 3)
    if "no_rate" in index:
        with open_shard(out / index["no_rate"].shard) as f:
            outcome = f"extracted at the assumed {video_reader(f, 'no_rate').attrs.fps_source:g} fps"
    else:
        outcome = failures.get("no_rate", "neither extracted nor a failures record")
    return Record("bad video", "no stated frame rate, with --fps", held, outcome,
                  videos_lost=0 if "good" in index else 1)


BAD_MANIFESTS = {
    "missing columns": "video_id,label\na,0\n",
    "duplicate ids": "video_id,path,label\na,good.avi,0\na,good.avi,1\n",
    "non-integer label": "video_id,path,label\na,good.avi,one\n",
    "negative label": "video_id,path,label\na,good.avi,-1\n",
    "path escaping the root": "video_id,path,label\na,../good.avi,0\n",
    "absolute path": "video_id,path,label\na,/etc/hostname,0\n",
    "empty file": "",
    "unknown split value": "video_id,path,label,split1\na,good.avi,0,maybe\n",
    "one label with two names": "video_id,path,label,label_name\na,good.avi,0,run\nb,good.avi,0,walk\n",
    "one name on two labels": "video_id,path,label,label_name\na,good.avi,0,run\nb,good.avi,1,run\n",
}


def bad_manifests(work: Path) -> list[Record]:
    """Each bad manifest: exit status 2 and one line naming the problem; a BOM is no problem."""
    root = work / "manifests"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    write_video(root / "good.avi", moving_square_frames(4, SIZE[0], SIZE[1], 24))
    records = []
    cases = {k: v.encode() for k, v in BAD_MANIFESTS.items()}
    cases["non-UTF-8 bytes"] = b"video_id,path,label\na,g\xff\xfe.avi,0\n"
    for kind, data in cases.items():
        manifest = root / f"{kind.replace(' ', '_')}.csv"
        manifest.write_bytes(data)
        result = run([*FLOWPREP, "extract", "--manifest", manifest, "--out", root / "out", "--flow", "farneback"])
        held = result.returncode == 2 and one_line(result) and str(manifest) in result.stderr
        records.append(Record("bad manifest", kind, held, result.stderr.strip()[-200:]))
    bom = root / "bom.csv"
    bom.write_bytes("video_id,path,label\na,good.avi,0\n".encode("utf-8-sig"))
    result = run([*FLOWPREP, "extract", "--manifest", bom, "--out", root / "bom_out", "--flow", "farneback",
                  "--size", "48x32"])
    records.append(Record("bad manifest", "byte-order mark (accepted)", result.returncode == 0,
                          result.stderr.strip()[-200:]))
    return records


BAD_ARGUMENTS = {  # (command, what is bad, the arguments after the command's required ones)
    "negative workers": ("extract", ["--workers", "-1"]),
    "size 0x0": ("extract", ["--size", "0x0"]),
    "unknown flow method": ("extract", ["--flow", "raft"]),
    "unknown flow parameter": ("extract", ["--flow-param", "bogus=1"]),
    "bad parameter value": ("extract", ["--flow-param", "nscales=many"]),
    "unknown codec": ("extract", ["--flow-codec", "webp"]),
    "JPEG quality 500": ("extract", ["--rgb-codec", "jpeg:500"]),
    "bound 0": ("extract", ["--bound", "0"]),
    "negative bound": ("extract", ["--bound", "-5"]),
    "unknown device": ("extract", ["--device", "tpu"]),
    "a part out of range": ("extract", ["--num-parts", "2", "--part", "2"]),
    "scheduler address": ("extract", ["--scheduler", "localhost"]),
    "train: unknown stream": ("train", ["--stream", "audio"]),
    "train: crop size 0": ("train", ["--crop-size", "0"]),
    "train: batch size 0": ("train", ["--batch-size", "0"]),
    "train: unknown backbone": ("train", ["--backbone", "resnet1000"]),
    "train: a folder that does not exist": ("train", ["nowhere"]),  # EXTRACTION itself
}


def bad_arguments(work: Path, shards: Path | None = None) -> list[Record]:
    """Each bad option, to `flowprep extract` and to `twostream train` (on `shards`, where given):
    exit status 2, one line naming the value."""
    root = work / "arguments"
    root.mkdir(parents=True, exist_ok=True)
    write_video(root / "good.avi", moving_square_frames(4, SIZE[0], SIZE[1], 24))
    (root / "manifest.csv").write_text("video_id,path,label\na,good.avi,0\n")
    records = []
    for kind, (command, args) in BAD_ARGUMENTS.items():
        if command == "extract":
            result = run([*FLOWPREP, "extract", "--manifest", root / "manifest.csv", "--out", root / "out", *args])
        elif shards is None:
            continue
        else:
            # an argument list that starts with a value replaces EXTRACTION (the positional argument)
            extraction, rest = (args[0], args[1:]) if not args[0].startswith("-") else (shards, args)
            result = run([*TWOSTREAM, "train", extraction, "--out", root / "run", "--epochs", "1", *rest])
        value = args[-1].split("=")[0]
        held = result.returncode == 2 and one_line(result) and value.split(":")[-1] in result.stderr
        records.append(Record("bad argument", kind, held, result.stderr.strip()[-200:]))
    return records
