import pytest

from flowprep.extract.frames import FrameSampler, output_size


def kept(sampler, n):
    return [i for i in range(n) if sampler.keep(i)]


def test_every_frame_by_default():
    assert kept(FrameSampler(30.0), 5) == [0, 1, 2, 3, 4]


def test_stride():
    assert kept(FrameSampler(30.0, stride=3), 10) == [0, 3, 6, 9]


@pytest.mark.parametrize("source,target,n,expected", [
    (30.0, 15.0, 8, [0, 2, 4, 6]),
    (30.0, 10.0, 10, [0, 3, 6, 9]),
    (25.0, 10.0, 11, [0, 3, 5, 8, 10]),  # 0, 0.4 s=frame 10; first frame at or after each 0.1 s
    (29.97, 29.97, 4, [0, 1, 2, 3]),
    (15.0, 30.0, 4, [0, 1, 2, 3]),  # no upsampling: every frame, never invented ones
])
def test_target_fps(source, target, n, expected):
    sampler = FrameSampler(source, target_fps=target)
    assert kept(sampler, n) == expected
    assert sampler.output_fps(source) == pytest.approx(min(source, target))


def test_max_frames_stops_sampling():
    sampler = FrameSampler(30.0, stride=2, max_frames=3)
    assert kept(sampler, 100) == [0, 2, 4]
    assert sampler.done


def test_target_fps_needs_a_known_source_rate():
    with pytest.raises(ValueError, match="usable frame rate"):
        FrameSampler(0.0, target_fps=10.0)


def test_output_size():
    assert output_size(320, 240, (340, 256), None) == (340, 256)
    assert output_size(320, 240, None, 256) == (341, 256)
    assert output_size(240, 432, None, 128) == (128, 230)
