"""The Middlebury colour coding: the wheel, known directions, saturation, the legend, and
`flowprep show` on extracted squares moving right, down, left and up."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from flowprep.tools.flow_viz import BACKGROUND, GAP, HEADER, MARGIN, WHEEL, direction_color, flow_to_rgb, wheel_legend
from tests.support.cli import flowprep
from tests.support.extraction import extract
from tests.support.videos import FRAMES, HEIGHT, MOTIONS, WIDTH, make_videos, square_box

# Expected colours worked out by hand from Baker et al.'s wheel: 55 hues, ramps RY 15, YG 6,
# GC 4, CB 11, BM 13, MR 6, looked up at angle atan2(-v, -u) / pi, position (a + 1) / 2 * 54.
#   right (1, 0):  a = -1    -> position 0    -> wheel[0] = red
#   down  (0, 1):  a = -0.5  -> position 13.5 -> (wheel[13] + wheel[14]) / 2 = (255, (221 + 238) / 2, 0)
#   left  (-1, 0): a = 0     -> position 27   -> wheel[27], cyan-blue ramp step 2: (0, 255 - 46, 255)
#   up    (0, -1): a = 0.5   -> position 40.5 -> (wheel[40] + wheel[41]) / 2, blue-magenta steps 4, 5: (88, 0, 255)
EXPECTED = {"right": (255, 0, 0), "down": (255, 229, 0), "left": (0, 209, 255), "up": (88, 0, 255)}
UNIT = {"right": (1, 0), "down": (0, 1), "left": (-1, 0), "up": (0, -1)}


def hue(rgb) -> float:
    """OpenCV hue (0-180) of one RGB colour."""
    return float(cv2.cvtColor(np.uint8([[rgb]]), cv2.COLOR_RGB2HSV)[0, 0, 0])


def hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 180
    return min(d, 180 - d)


def test_the_colour_coding_is_torchvisions_flow_to_image():
    """The hand-written coding is kept (flow_viz's docstring says why) but must draw what
    torchvision.utils.flow_to_image draws where both apply: flow scaled by its own largest vector.
    (The largest vector itself is left out: at radius 1.0 float rounding decides whether it is
    drawn as at or beyond the edge, in this code and in torchvision's differently.)"""
    torch = pytest.importorskip("torch")
    flow_to_image = pytest.importorskip("torchvision.utils").flow_to_image
    flow = (np.random.default_rng(0).normal(size=(40, 50, 2)) * 3).astype(np.float32)
    radius = np.hypot(flow[..., 0], flow[..., 1])
    ours = flow_to_rgb(flow, float(radius.max())).astype(int)
    theirs = flow_to_image(torch.from_numpy(flow).permute(2, 0, 1)).permute(1, 2, 0).numpy().astype(int)
    inside = radius < 0.999 * radius.max()
    assert inside.sum() > 1900
    assert np.abs(ours - theirs)[inside].max() <= 1  # floor(255 * c) of float64 here, of float32 there


def test_the_wheel_has_55_colours_with_the_primary_and_secondary_colours_at_segment_starts():
    assert WHEEL.shape == (55, 3)
    starts = {0: (255, 0, 0), 15: (255, 255, 0), 21: (0, 255, 0), 25: (0, 255, 255), 36: (0, 0, 255), 49: (255, 0, 255)}
    for index, colour in starts.items():
        assert tuple(WHEEL[index]) == colour


@pytest.mark.parametrize("name", list(EXPECTED))
def test_known_directions_get_the_wheels_colours(name):
    assert tuple(direction_color(*UNIT[name])) == EXPECTED[name]
    # the colour depends on the direction only, not on the length at full saturation
    dx, dy = UNIT[name]
    assert tuple(flow_to_rgb(np.float32([[[7 * dx, 7 * dy]]]), 7.0)[0, 0]) == EXPECTED[name]


def test_saturation_grows_with_magnitude_from_white_at_rest():
    field = np.float32([[[0, 0], [1, 0], [2, 0], [4, 0]]])
    colours = flow_to_rgb(field, max_magnitude=2.0)[0]
    assert tuple(colours[0]) == (255, 255, 255)  # no motion: white
    assert tuple(colours[1]) == (255, 127, 127)  # half way: half saturated red
    assert tuple(colours[2]) == (255, 0, 0)  # at the normalising magnitude: full red
    assert tuple(colours[3]) == (191, 0, 0)  # beyond it: darkened to 75%


def test_the_legend_disc_shows_each_direction_where_that_motion_points():
    size = 101
    legend = wheel_legend(size, max_magnitude=3.0)
    c = size // 2
    at = {"right": legend[c, size - 3], "left": legend[c, 2], "down": legend[size - 3, c], "up": legend[2, c]}
    for name, colour in at.items():
        assert hue_distance(hue(colour), hue(EXPECTED[name])) <= 2, name
    assert tuple(legend[c, c]) == (255, 255, 255)  # the centre is rest: white
    assert tuple(legend[0, 0]) == (BACKGROUND,) * 3  # outside the disc


# --- flowprep show, end to end ------------------------------------------------------------------
@pytest.fixture(scope="module")
def extraction(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("show")
    return extract(make_videos(root / "videos", MOTIONS), root / "out")


def panel(image: np.ndarray, column: int) -> np.ndarray:
    """Column 0 (RGB), 1 (forward) or 2 (backward) of a one-row picture."""
    x = MARGIN + column * (WIDTH + GAP)
    return image[MARGIN + HEADER: MARGIN + HEADER + HEIGHT, x: x + WIDTH]


@pytest.mark.parametrize("name", list(MOTIONS))
def test_show_colours_a_moving_square_by_its_direction(extraction, tmp_path, capsys, name):
    t = 3
    out = tmp_path / f"{name}.png"
    status, stdout, err = flowprep(capsys, "show", extraction, "--video", name, "--out", out, "--indices", str(t),
                                  "--max-flow", "2")
    assert status == 0, err
    image = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    velocity = MOTIONS[name]
    rows, cols = square_box(t, velocity=velocity)
    forward = np.median(panel(image, 1)[rows, cols].reshape(-1, 3), axis=0)
    rows, cols = square_box(t + 1, velocity=velocity)
    backward = np.median(panel(image, 2)[rows, cols].reshape(-1, 3), axis=0)
    opposite = {"right": "left", "left": "right", "up": "down", "down": "up"}[name]
    assert hue_distance(hue(forward), hue(EXPECTED[name])) <= 6, (forward, EXPECTED[name])
    assert hue_distance(hue(backward), hue(EXPECTED[opposite])) <= 6, (backward, EXPECTED[opposite])
    # 2 px of motion at --max-flow 2: strongly saturated, not washed out
    assert cv2.cvtColor(np.uint8([[forward]]), cv2.COLOR_RGB2HSV)[0, 0, 1] > 150
    # the static background is close to white once the mean is restored
    assert panel(image, 1)[:10, :10].mean() > 200
    # the RGB panel is the frame itself
    assert panel(image, 0).std() > 20


def test_show_writes_an_animated_gif_with_one_frame_per_pair(extraction, tmp_path, capsys):
    out = tmp_path / "right.gif"
    status, stdout, _ = flowprep(capsys, "show", extraction, "--video", "right", "--out", out)
    assert status == 0
    with Image.open(out) as gif:
        assert gif.n_frames == FRAMES - 1


@pytest.mark.parametrize("args,message", [
    (["--out", "x.jpg"], "output must end in .png or .gif, got 'x.jpg'"),
    (["--out", "x.png", "--indices", "0,99"], "frame 99 is out of range: the video has flow for frames 0..6"),
    (["--out", "x.png", "--indices", "a"], "expected comma-separated frame indices"),
])
def test_show_refuses_bad_requests_in_one_line(extraction, tmp_path, capsys, args, message):
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    status, _, err = flowprep(capsys, "show", extraction, "--video", "right", *args)
    assert status == 2 and err.count("\n") == 1 and message in err


def test_the_default_scale_shows_the_typical_motion_not_the_fastest_pixels():
    """Most pixels move 2 px right, 0.2 % of them 30 px (as a flow error at a border does): the
    default scale is the typical motion, so it is drawn saturated red; scaled to the largest, as
    before, the same motion was a pale pink. --max-flow still sets the scale."""
    from flowprep.tools.show import colour_scale

    flow = np.zeros((100, 100, 2), np.float32)
    flow[..., 0] = 2.0
    flow[0, :20, 0] = 30.0
    scale = colour_scale([flow])
    assert scale == pytest.approx(2.0)
    typical = flow_to_rgb(flow, scale)[50, 50]
    assert tuple(typical) == EXPECTED["right"]  # full saturation
    pale = flow_to_rgb(flow, float(np.hypot(flow[..., 0], flow[..., 1]).max()))[50, 50]
    assert pale.min() > 200  # what scaling to the maximum drew: nearly white
    assert colour_scale([flow], 5.0) == 5.0
    assert colour_scale([np.zeros((4, 4, 2))]) == 1.0
