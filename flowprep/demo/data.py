"""A synthetic action dataset whose classes need both streams: appearance x motion.

Every video shows one textured object over a cluttered, textured background seen by a slightly
jittering camera. A class is an (appearance, motion) pair, 2 x 4 = 8 classes by default:
- the appearance is the object's colour, and colour only: the object's luminance texture is drawn
  from the same distribution for every appearance and the colour is added in the chroma planes
  (YCrCb), so the grayscale frames that flow is computed on are the same, up to rounding, whatever
  the appearance. The flow cannot tell the appearances apart; one RGB frame can.
- the motion is how the object moves: up, down, grow (zoom in) or shrink (zoom out). A horizontal
  flip (the training augmentation) maps each of them to itself, so no two classes are mirror
  images. Position and size are randomised so that the distribution of (position, size) in one
  frame is exactly the same for every motion (`object_geometry`): one frame cannot tell the
  motions apart; the flow can.
So a spatial stream can reach about 1/(number of motions) accuracy, a temporal stream about
1/(number of appearances), and their fusion far more: the complementarity the two-stream paper
claims, on a dataset small enough to run end to end on a laptop CPU.

Everything is drawn from numpy generators seeded by (seed, class, index), so a video does not
depend on how many others are made, and the same seed gives byte-identical files. Videos are
written as FFV1 in .avi (lossless), so extraction sees exactly the rendered pixels.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from flowprep.format.manifest import ManifestEntry, write_manifest
from runkit.files import check_replaceable, parse_json, read_regular_text, remove_file, write_text_atomic

DEMO_CONFIG_FILE = "demo_config.json"
MANIFEST_FILE = "manifest.csv"
VIDEO_DIR = "videos"
FOURCC = "FFV1"


@dataclass(frozen=True)
class Appearance:
    name: str
    cr: float  # chroma offsets from neutral (YCrCb, 8-bit units); luminance is never touched
    cb: float


@dataclass(frozen=True)
class Motion:
    """How the object's vertical position and its size change a frame: -1, 0 or +1 each.
    Horizontal motion is left out on purpose: a flip would turn left into right."""
    name: str
    dy: int
    dsize: int


APPEARANCES = {a.name: a for a in (Appearance("red", cr=40.0, cb=-15.0), Appearance("blue", cr=-25.0, cb=35.0))}
MOTIONS = {m.name: m for m in (Motion("up", -1, 0), Motion("down", 1, 0), Motion("grow", 0, 1), Motion("shrink", 0, -1))}

# Luminance ranges keep every pixel inside 0..255 after the chroma is added (no clipping, which
# would change the luminance differently for each colour). Checked by the tests.
OBJECT_LUMA = (70.0, 180.0)
BACKGROUND_LUMA = (40.0, 215.0)
BACKGROUND_CHROMA = 12.0  # max |offset| of the clutter's colour: far from any object colour
PATCH = 96  # the object's texture is drawn at this size and resampled to the object's size

# Motion magnitudes are totals over the clip (fractions of the frame's shorter side, and the
# change of log size) so a clip of any length stays in frame; per-frame values follow.
TRAVEL = (0.25, 0.42)
LOG_ZOOM = (0.75, 1.15)
SIZE = (0.22, 0.32)  # object diameter at the middle of its size range
CENTRE = (0.3, 0.7)  # object centre at the middle of its range, as a fraction of width / height
DRIFT = 0.04  # max total horizontal drift (a nuisance common to all motions)
MAX_JITTER = 4.0
MARGIN = int(MAX_JITTER) + 2  # background pixels beyond each frame edge, so camera shake never shows a border


class DemoDataError(ValueError):
    pass


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    videos_per_class: int = 24
    frames: int = 20
    width: int = 112
    height: int = 112
    fps: float = 25.0
    test_per_class: int | None = None  # the last ones of each class form split1's test part; None: a third
    jitter: float = 1.0  # camera shake, max pixels (mean flow subtraction at extraction removes most of it)
    appearances: tuple[str, ...] = tuple(APPEARANCES)
    motions: tuple[str, ...] = tuple(MOTIONS)

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**32:
            raise DemoDataError(f"seed must be an integer in 0..{2**32 - 1}, got {self.seed!r}")
        if self.videos_per_class < 2:
            raise DemoDataError(f"videos per class must be at least 2 (one train, one test), got {self.videos_per_class!r}")
        if self.frames < 2:
            raise DemoDataError(f"frames must be at least 2 (one flow field), got {self.frames!r}")
        if self.width < 32 or self.height < 32:
            raise DemoDataError(f"size must be at least 32x32 pixels, got {self.width}x{self.height}")
        if not self.fps > 0:
            raise DemoDataError(f"fps must be positive, got {self.fps!r}")
        if not 1 <= self.test_count < self.videos_per_class:
            raise DemoDataError(f"test videos per class must be 1..{self.videos_per_class - 1} (videos per class - 1), "
                                f"got {self.test_per_class!r}")
        if not 0 <= self.jitter <= MAX_JITTER:
            raise DemoDataError(f"jitter must be 0..{MAX_JITTER:g} pixels, got {self.jitter!r}")
        for kind, names, known in (("appearance", self.appearances, APPEARANCES), ("motion", self.motions, MOTIONS)):
            unknown = [n for n in names if n not in known]
            if unknown or not names or len(set(names)) != len(names):
                raise DemoDataError(f"{kind}s must be distinct names among {', '.join(known)}; got {', '.join(names) or 'none'}")

    @property
    def test_count(self) -> int:
        """Test videos per class (`test_per_class`, or a third of the videos)."""
        return max(1, self.videos_per_class // 3) if self.test_per_class is None else self.test_per_class

    @property
    def classes(self) -> list[tuple[str, str]]:
        """(appearance, motion) of each label, appearance-major."""
        return [(a, m) for a in self.appearances for m in self.motions]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class VideoSpec:
    """Everything random about one video; rendering it is deterministic."""

    video_id: str
    label: int
    appearance: str
    motion: str
    frames: int
    width: int
    height: int
    centre: tuple[float, float]  # (x, y) pixels at the middle of the trajectory
    travel: float  # vertical pixels per frame when moving
    size: float  # diameter (pixels) at the middle of the size range
    zoom: float  # change of log diameter per frame when growing or shrinking
    drift: float  # horizontal pixels per frame, any motion
    rest_y: float  # for a motion that keeps y still: the (t - middle) it rests at, drawn from the frame times
    rest_size: float  # likewise for size
    aspect: float  # ellipse height / width
    camera: tuple[tuple[float, float], ...]  # per-frame camera offset (x, y) in pixels
    texture_seed: int
    background_seed: int


def video_id_for(appearance: str, motion: str, index: int) -> str:
    return f"{appearance}-{motion}-{index:03d}"


def draw_spec(config: DemoConfig, label: int, index: int) -> VideoSpec:
    """The random choices of video `index` of class `label`, from its own generator."""
    appearance, motion = config.classes[label]
    rng = np.random.default_rng([config.seed, label, index])
    t = config.frames
    steps = max(t - 1, 1)
    side = min(config.width, config.height)
    middle = (t - 1) / 2
    # The resting offsets are drawn from the very times a moving object passes through, so
    # "where and how big is the object in a random frame" has one distribution for every motion.
    rest_y, rest_size = (float(rng.integers(0, t)) - middle for _ in range(2))
    return VideoSpec(
        video_id=video_id_for(appearance, motion, index),
        label=label, appearance=appearance, motion=motion,
        frames=t, width=config.width, height=config.height,
        centre=(float(rng.uniform(*CENTRE) * config.width), float(rng.uniform(*CENTRE) * config.height)),
        travel=float(rng.uniform(*TRAVEL) * side / steps),
        size=float(rng.uniform(*SIZE) * side),
        zoom=float(rng.uniform(*LOG_ZOOM) / steps),
        drift=float(rng.uniform(-DRIFT, DRIFT) * side / steps),
        rest_y=rest_y, rest_size=rest_size,
        aspect=float(np.exp(rng.uniform(-0.3, 0.3))),
        camera=camera_path(rng, t, config.jitter),
        texture_seed=int(rng.integers(2**31)),
        background_seed=int(rng.integers(2**31)),
    )


def camera_path(rng: np.random.Generator, frames: int, jitter: float) -> tuple[tuple[float, float], ...]:
    """A smooth random shake within +-jitter pixels (a hand-held camera, not a pan)."""
    if jitter == 0 or frames < 2:
        return tuple((0.0, 0.0) for _ in range(frames))
    noise = rng.normal(size=(frames + 8, 2))
    kernel = np.exp(-0.5 * (np.arange(-4, 5) / 2.0) ** 2)
    smooth = np.stack([np.convolve(noise[:, k], kernel / kernel.sum(), mode="valid") for k in range(2)], axis=1)
    smooth *= jitter / max(float(np.abs(smooth).max()), 1e-6)
    return tuple((float(x), float(y)) for x, y in smooth)


def object_geometry(spec: VideoSpec, t: int) -> tuple[float, float, float]:
    """(centre x, centre y, diameter) of the object in scene coordinates at frame t."""
    motion = MOTIONS[spec.motion]
    offset = t - (spec.frames - 1) / 2
    ay = motion.dy * offset if motion.dy else spec.rest_y
    asize = motion.dsize * offset if motion.dsize else spec.rest_size
    return (spec.centre[0] + spec.drift * offset,
            spec.centre[1] + spec.travel * ay,
            spec.size * math.exp(spec.zoom * asize))


# --- rendering ---------------------------------------------------------------------------------
def smooth_noise(rng: np.random.Generator, height: int, width: int, blur: float) -> np.ndarray:
    """Random texture in 0..1 (float32), smoothed by a Gaussian of `blur` pixels."""
    noise = cv2.GaussianBlur(rng.random((height, width), dtype=np.float32), (0, 0), blur)
    lo, hi = float(noise.min()), float(noise.max())
    return (noise - lo) / max(hi - lo, 1e-6)


def render_background(spec: VideoSpec) -> np.ndarray:
    """The static scene, (H + 2 MARGIN, W + 2 MARGIN, 3) float32 planes Y, Cr, Cb (offsets for Cr, Cb)."""
    rng = np.random.default_rng(spec.background_seed)
    h, w = spec.height + 2 * MARGIN, spec.width + 2 * MARGIN
    lo, hi = BACKGROUND_LUMA
    luma = lo + (hi - lo) * (0.6 * smooth_noise(rng, h, w, 6.0) + 0.4 * smooth_noise(rng, h, w, 1.2))
    chroma = (rng.uniform(-0.5, 0.5, size=2) * BACKGROUND_CHROMA).astype(np.float32)
    planes = [luma.astype(np.float32), np.full((h, w), chroma[0], np.float32), np.full((h, w), chroma[1], np.float32)]
    # clutter: rectangles, discs and bars of their own grey and faint colour
    side = min(h, w)
    for _ in range(int(rng.integers(10, 18))):
        value = [float(rng.uniform(lo, hi)), *(float(v) for v in rng.uniform(-1, 1, size=2) * BACKGROUND_CHROMA)]
        mask = np.zeros((h, w), np.uint8)
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.uniform(0.04, 0.14) * side)
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(mask, (x - r, y - r // 2), (x + r, y + r // 2), 255, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.circle(mask, (x, y), r, 255, -1, cv2.LINE_AA)
        else:
            angle = rng.uniform(0, np.pi)
            dx, dy = int(2 * r * np.cos(angle)), int(2 * r * np.sin(angle))
            cv2.line(mask, (x - dx, y - dy), (x + dx, y + dy), 255, max(2, r // 4), cv2.LINE_AA)
        alpha = mask.astype(np.float32) / 255
        for plane, v in zip(planes, value):
            plane += alpha * (v - plane)
    return np.stack(planes, axis=-1)


def render_object(spec: VideoSpec) -> tuple[np.ndarray, np.ndarray]:
    """The object's luminance texture and soft-edged elliptical mask, both (PATCH, PATCH) float32.
    The texture's generator does not know the appearance: same seed, same luminance, any colour."""
    rng = np.random.default_rng(spec.texture_seed)
    lo, hi = OBJECT_LUMA
    luma = lo + (hi - lo) * (0.5 * smooth_noise(rng, PATCH, PATCH, 2.0) + 0.5 * smooth_noise(rng, PATCH, PATCH, 5.0))
    mask = np.zeros((PATCH, PATCH), np.uint8)
    half = PATCH / 2 - 2
    axes = (half / max(spec.aspect, 1.0), half * min(spec.aspect, 1.0))
    cv2.ellipse(mask, (PATCH // 2, PATCH // 2), (int(axes[0]), int(axes[1])), 0, 0, 360, 255, -1, cv2.LINE_AA)
    return luma.astype(np.float32), mask.astype(np.float32) / 255


def render_video(spec: VideoSpec) -> list[np.ndarray]:
    """The video's frames, BGR uint8 (H, W, 3)."""
    scene = render_background(spec)
    luma, mask = render_object(spec)
    colour = APPEARANCES[spec.appearance]
    frames = []
    for t in range(spec.frames):
        cam_x, cam_y = spec.camera[t]
        view = np.float32([[1, 0, -(MARGIN + cam_x)], [0, 1, -(MARGIN + cam_y)]])
        frame = cv2.warpAffine(scene, view, (spec.width, spec.height), flags=cv2.INTER_LINEAR)
        cx, cy, size = object_geometry(spec, t)
        scale = size / PATCH
        place = np.float32([[scale, 0, cx - cam_x - scale * PATCH / 2], [0, scale, cy - cam_y - scale * PATCH / 2]])
        obj = cv2.warpAffine(luma, place, (spec.width, spec.height), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(mask, place, (spec.width, spec.height), flags=cv2.INTER_LINEAR)
        frame[..., 0] += alpha * (obj - frame[..., 0])
        frame[..., 1] += alpha * (colour.cr - frame[..., 1])
        frame[..., 2] += alpha * (colour.cb - frame[..., 2])
        frames.append(ycrcb_offsets_to_bgr(frame))
    return frames


def ycrcb_offsets_to_bgr(planes: np.ndarray) -> np.ndarray:
    """Y (0..255), Cr and Cb offsets from neutral -> BGR uint8, with OpenCV's luminance weights
    (the ones `cv2.COLOR_BGR2GRAY` uses at extraction, so grey == Y up to rounding)."""
    ycrcb = planes.copy()
    ycrcb[..., 1:] += 128
    bgr = cv2.cvtColor(ycrcb / 255, cv2.COLOR_YCrCb2BGR)
    return np.clip(np.rint(bgr * 255), 0, 255).astype(np.uint8)


# --- the dataset on disk (the one function here that writes) ---------------------------------
def dataset_specs(config: DemoConfig) -> list[tuple[VideoSpec, str]]:
    """Every video's spec and its split1 membership (the last test_count of each class are test)."""
    n_train = config.videos_per_class - config.test_count
    return [(draw_spec(config, label, i), "train" if i < n_train else "test")
            for label in range(len(config.classes)) for i in range(config.videos_per_class)]


def write_demo_dataset(out_dir: str | Path, config: DemoConfig) -> list[ManifestEntry]:
    """Write OUT/videos/*.avi, OUT/manifest.csv (flowprep's manifest format) and OUT/demo_config.json.

    A folder made with another config is refused rather than mixed; the same config is rewritten
    (deterministically, so to the same bytes).
    """
    out_dir = Path(out_dir)
    stored = out_dir / DEMO_CONFIG_FILE
    if stored.exists():
        try:
            previous = parse_json(read_regular_text(stored))
        except (OSError, ValueError) as exc:
            raise DemoDataError(f"{stored}: unreadable ({exc}); delete it or choose another --out") from None
        current = parse_json(config.to_json(), dict)
        changed = [f"{k}: {previous.get(k)!r} -> {current[k]!r}" for k in current if previous.get(k) != current[k]]
        if changed:
            raise DemoDataError(f"{out_dir} holds demo data made with another config ({'; '.join(changed)}); "
                                f"choose another --out or delete it")
    (out_dir / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
    entries = []
    for spec, split in dataset_specs(config):
        path = f"{VIDEO_DIR}/{spec.video_id}.avi"
        write_video(out_dir / path, render_video(spec), config.fps)
        entries.append(ManifestEntry(spec.video_id, path, spec.label, f"{spec.appearance}-{spec.motion}",
                                     (("split1", split),)))
    write_manifest(out_dir / MANIFEST_FILE, entries)
    write_text_atomic(stored, config.to_json() + "\n")
    return entries


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0, fourcc: str = FOURCC) -> Path:
    """Write BGR frames with OpenCV, atomically (FFV1 in .avi, the default, is lossless, so flow
    sees exactly these pixels)."""
    h, w = frames[0].shape[:2]
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)  # OpenCV picks the container by extension
    check_replaceable(path)  # OpenCV opens the name itself: never through a link
    remove_file(tmp)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {fourcc} video {tmp}: this OpenCV build lacks the encoder")
    for frame in frames:
        writer.write(frame)
    writer.release()
    tmp.replace(path)
    return path
