"""Rawframes trees written exactly as the tools users have write them, for the import tests.

Read from the tools' sources (not copied):
- open-mmlab/denseflow: frames `img_%05d.jpg` from 0 (writeImages, start 0), flow
  `flow_x_%05d.jpg` / `flow_y_%05d.jpg` from 0, T-1 fields for step 1 (writeFlowImages), JPEG by
  cv::imencode (quality 95), grayscale flow quantised by convertFlowToImage:
  v > b: 255, v < -b: 0, else cvRound(255 (v + b) / 2b), so zero motion is 128; done markers in
  OUT/.done/<class>/<video>. mmaction2's tools/data/build_rawframes.py runs it with -b=20 into
  OUT/<class>/ (--level 2, the default), so the videos are OUT/<class>/<video>/; with
  --use-opencv the RGB frames are mmcv's instead, `img_{i + 1:05d}.jpg`: from 1.
- mmaction2's tools/misc/flow_extraction.py: `x_{:05d}.jpg` / `y_{:05d}.jpg` and, with
  --save-rgb, `img_{:05d}.jpg`, from --start-idx (1 by default), T-1 fields, cv2.imwrite; flow
  clipped, shifted, scaled by 255 / 2b and truncated by astype(uint8), so zero motion is 127.
- mmaction2's tools/data/build_file_list.py: `<dataset>_{train,val}_split_<n>_rawframes.txt`,
  lines `frame_dir total_frames label` (the RGB frame count), shuffled.
Flow is Farneback with flow_extraction.py's parameters: any flow will do, the files are the point.
"""
from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np

from tests.support.videos import HEIGHT, WIDTH, moving_square_frames

FRAMES = 8
BOUND = 20


def farneback(frames: list[np.ndarray]) -> list[np.ndarray]:
    """flow_extraction.py's generate_flow(frames, 'farneback'): T-1 float32 (H, W, 2) fields."""
    gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    return [cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0) for a, b in zip(gray[:-1], gray[1:])]


def denseflow_codes(plane: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """convertFlowToImage's CAST(v, -b, b): saturate, else cvRound (round half to even) in double."""
    v = plane.astype(np.float64)
    codes = np.rint(255 * (v + bound) / (2 * bound))
    return np.where(v > bound, 255, np.where(v < -bound, 0, codes)).astype(np.uint8)


def flow_extraction_codes(plane: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """flow_extraction.py's flow_to_img: clip, += bound, *= 255 / 2b in float32, astype(uint8) truncates."""
    flow = np.clip(plane, -bound, bound)
    flow += bound
    flow *= (255 / float(2 * bound))
    return flow.astype(np.uint8)


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image)  # denseflow: imencode with OpenCV's default quality, 95
    assert ok
    return buf.tobytes()


def denseflow_video(folder: Path, frames: list[np.ndarray], rgb_from_opencv: bool = False,
                    flow_frames: list[np.ndarray] | None = None) -> None:
    """One video as build_rawframes.py --task both writes it with denseflow (img_ and flow from 0),
    or with --use-opencv for the RGB (img_ from 1); `flow_frames`: the frames denseflow decoded,
    when they differ from the RGB decoder's."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        name = f"img_{i + 1:05d}.jpg" if rgb_from_opencv else f"img_{i:05d}.jpg"
        if rgb_from_opencv:
            cv2.imwrite(str(folder / name), frame)  # mmcv.imwrite: cv2.imwrite
        else:
            (folder / name).write_bytes(_jpeg(frame))
    for i, field in enumerate(farneback(flow_frames or frames)):
        (folder / f"flow_x_{i:05d}.jpg").write_bytes(_jpeg(denseflow_codes(field[..., 0])))
        (folder / f"flow_y_{i:05d}.jpg").write_bytes(_jpeg(denseflow_codes(field[..., 1])))


def flow_extraction_video(dest: Path, frames: list[np.ndarray], start_idx: int = 1) -> None:
    """One video as `flow_extraction.py --save-rgb --start-idx 1` writes it."""
    dest.mkdir(parents=True, exist_ok=True)
    for i, field in enumerate(farneback(frames)):
        cv2.imwrite(str(dest / f"x_{i + start_idx:05d}.jpg"), flow_extraction_codes(field[..., 0]))
        cv2.imwrite(str(dest / f"y_{i + start_idx:05d}.jpg"), flow_extraction_codes(field[..., 1]))
    for i, frame in enumerate(frames):
        cv2.imwrite(str(dest / f"img_{i + start_idx:05d}.jpg"), frame)


def videos(motions: dict[str, tuple[int, int]], frames: int = FRAMES) -> dict[str, list[np.ndarray]]:
    return {name: moving_square_frames(frames, WIDTH, HEIGHT, velocity=v, seed=label)
            for label, (name, v) in enumerate(motions.items())}


def class_of(name: str) -> str:
    return f"Move{name.capitalize()}"


def video_of(name: str) -> str:
    return f"v_Move{name.capitalize()}_g01_c01"


def denseflow_tree(root: Path, motions: dict[str, tuple[int, int]], frames: int = FRAMES) -> dict[str, str]:
    """build_rawframes.py SRC ROOT --task both --level 2 (denseflow): ROOT/<class>/<video>/, with
    denseflow's done markers; returns {motion: frame_dir}."""
    dirs = {}
    for name, clip in videos(motions, frames).items():
        dirs[name] = f"{class_of(name)}/{video_of(name)}"
        denseflow_video(root / dirs[name], clip)
        done = root / ".done" / class_of(name)
        done.mkdir(parents=True, exist_ok=True)
        (done / video_of(name)).touch()
    return dirs


def file_lists(folder: Path, dataset: str, dirs: dict[str, str], counts: dict[str, int],
               labels: dict[str, int], train: set[str], splits: int = 1) -> list[Path]:
    """build_file_list.py DATASET ROOT --level 2 --format rawframes --shuffle: per split a train and
    a val list of `frame_dir total_frames label` lines; split 2 swaps the parts of split 1."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, names, written = random.Random(0), sorted(dirs), []
    for n in range(1, splits + 1):
        training = train if n % 2 else set(names) - train
        chosen = {"train": [m for m in names if m in training], "val": [m for m in names if m not in training]}
        for part, members in chosen.items():
            lines = [f"{dirs[m]} {counts[m]} {labels[m]}\n" for m in members]
            rng.shuffle(lines)
            path = folder / f"{dataset}_{part}_split_{n}_rawframes.txt"
            path.write_text("".join(lines))
            written.append(path)
    return written
