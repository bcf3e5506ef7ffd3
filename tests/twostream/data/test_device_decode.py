"""`twostream train --decode-on device` (twostream/data/device_decode.py) on tiny JPEG shards: the
batch decoded in the training process (here on the CPU) is the loader's batch, for RGB frames and
flow stacks, under every augmentation; a run trained with it is the run trained without it; and
what it cannot decode is refused in one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from tests.support.reliability.training import same_tensors
from tests.support.synthetic import moving_video, write_extraction
from twostream.core.config import TrainConfig
from twostream.core.errors import DataError
from twostream.data.datasets import Augment, TrainSamples
from twostream.data.device_decode import DeviceDecoder, StoredTrainSamples
from twostream.data.extraction import open_extraction
from twostream.data.samples import InputSpec
from twostream.data.store import ShardStore
from twostream.streams.trainer import fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Six videos of 2 classes, 64x48, frames and flow stored as JPEG (quality 90: lossy, so a
    decoder that differs shows)."""
    videos = [moving_video(f"train{i}", i % 2, frames=10, seed=i, width=64, height=48) for i in range(6)]
    return write_extraction(tmp_path_factory.mktemp("jpeg") / "ex", videos, codec="jpeg:90")


def both_batches(shards, spec: InputSpec, augment: Augment, segments: int = 1, epoch: int = 3):
    """Every training item of the shards as one batch: decoded by the loader, and decoded by
    DeviceDecoder from what the device path's loader gives."""
    entries = sorted(open_extraction(str(shards)).index.values(), key=lambda e: e.video_id)
    keys = [(epoch, i) for i in range(len(entries))]
    loader = TrainSamples(ShardStore(shards), entries, spec, augment, segments, seed=5)
    stored = StoredTrainSamples(ShardStore(shards), entries, spec, augment, segments, seed=5)
    expected = default_collate([loader[k] for k in keys])
    decoded = DeviceDecoder(spec, torch.device("cpu"))(stored.collate([stored[k] for k in keys]))
    return expected, decoded


@pytest.mark.parametrize("spec, augment", [
    (InputSpec("spatial", 1, "forward", True, 32), Augment(flip=True)),
    (InputSpec("temporal", 4, "forward", True, 32), Augment(flip=True)),
    # backward fields, and the means put back
    (InputSpec("temporal", 4, "bidirectional", False, 40), Augment(flip=True)),
    # multi-scale boxes of 48 to 31 px shrunk to 24: OpenCV's fixed-point bilinear, redone
    (InputSpec("spatial", 1, "forward", True, 24), Augment(multiscale_crop=True)),
    (InputSpec("temporal", 3, "forward", True, 24), Augment(multiscale_crop=True)),
], ids=["rgb", "flow", "flow-bidirectional-means", "rgb-shrunk", "flow-shrunk"])
def test_the_device_decoded_batch_is_the_loaders_batch(shards, spec, augment):
    (codes, affine, labels), (d_codes, d_affine, d_labels) = both_batches(shards, spec, augment, segments=2)
    assert d_codes.dtype == torch.uint8 and d_codes.shape == codes.shape == (6, 2, spec.in_channels, spec.crop_size,
                                                                               spec.crop_size)
    assert torch.equal(d_codes, codes)  # the same libjpeg-turbo, crop, resize and flip: to the code
    assert torch.equal(d_affine, affine) and torch.equal(d_labels, labels)


@pytest.mark.parametrize("stream, augment, exact", [
    ("spatial", Augment(multiscale_crop=True), 0.99),
    ("temporal", Augment(multiscale_crop=True), 0.99),
    ("spatial", Augment(color_jitter=0.3), 0.9),
], ids=["rgb-enlarged", "flow-enlarged", "rgb-jittered"])
def test_enlarged_or_jittered_inputs_differ_by_rounding_at_most(shards, stream, augment, exact):
    """Boxes of 31 to 48 px resized to 44 (OpenCV rounds an enlarged image's border rows its own
    way), RGB jittered (numpy's float32 order of sums, not torch's): a code may round the other
    way, by one, now and then."""
    spec = InputSpec(stream, 3, "forward", True, 44)
    (codes, affine, _), (d_codes, d_affine, _) = both_batches(shards, spec, augment)
    difference = (d_codes.int() - codes.int()).abs()
    assert difference.max() <= 1 and (difference == 0).float().mean() > exact
    assert torch.equal(d_affine, affine)


def tiny(shards, out, **options) -> TrainConfig:
    return TrainConfig(**{**dict(extraction=str(shards), out=str(out), flow_length=2, crop_size=40, epochs=1,
                                 batch_size=3, lr=0.01, dropout=0.0, holdout=0.0, val_every=0, workers=0, threads=1),
                          **options})


def test_a_run_decoding_on_the_device_trains_as_one_decoding_in_the_loader(shards, tmp_path):
    """Two real training steps of the temporal stream each way (one loader worker on the device
    path: its items cross a process); the same inputs, so the same weights."""
    fit(tiny(shards, tmp_path / "loader", stream="temporal"), interactive=False)
    fit(tiny(shards, tmp_path / "device", stream="temporal", decode_on="device", workers=1), interactive=False)
    loader, device = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=False) for name in ("loader", "device"))
    assert same_tensors(loader["model"], device["model"])
    assert json.loads((tmp_path / "device" / "config.json").read_text())["decode_on"] == "device"
    # a run written before the option reads as decoding in the loader
    stored = json.loads(loader["config"])
    del stored["decode_on"]
    assert TrainConfig.from_dict(stored).decode_on == "loader"


def test_what_the_device_cannot_decode_is_refused_in_one_line(tmp_path):
    raw = write_extraction(tmp_path / "raw", [moving_video(f"v{i}", i % 2, seed=i) for i in range(2)], codec="raw")
    with pytest.raises(DataError, match=r"--decode-on device decodes JPEG images; the extraction stores flow as "
                                        r"'raw:none'"):
        fit(tiny(raw, tmp_path / "run", stream="temporal", crop_size=24, decode_on="device", batch_size=2),
            interactive=False)
    with pytest.raises(ValueError, match="--decode-on device decodes the frames and flow stacks of the 2D spatial"):
        tiny(raw, tmp_path / "run", stream="temporal", clip=4, backbone="r3d_18", decode_on="device")
    with pytest.raises(ValueError, match="decode on must be one of loader, device; got 'gpu'"):
        tiny(raw, tmp_path / "run", decode_on="gpu")


def test_a_damaged_jpeg_is_one_data_error(shards):
    spec = InputSpec("spatial", 1, "forward", True, 32)
    entries = sorted(open_extraction(str(shards)).index.values(), key=lambda e: e.video_id)
    item = StoredTrainSamples(ShardStore(shards), entries, spec, Augment(), 1, seed=0)[(0, 0)]
    damaged = type(item)([np.zeros(64, np.uint8)], item.box, item.flip, item.jitter, item.affine, item.label)
    with pytest.raises(DataError, match="a stored JPEG of this batch does not decode"):
        DeviceDecoder(spec, torch.device("cpu"))(StoredTrainSamples.collate([damaged]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("spec", [InputSpec("spatial", 1, "forward", True, 32), InputSpec("temporal", 4, "forward", True, 32)],
                         ids=["rgb", "flow"])
def test_gpu_decoding_is_the_loaders_but_for_nvjpegs_rounding(shards, spec):
    """On CUDA, nvJPEG decodes: its IDCT (and chroma upsampling) is not libjpeg-turbo's, so a code
    may differ a little; the bounds are what nvJPEG is expected to keep within (not yet checked on
    a GPU: the first GPU session runs this, benchmarks/gpu_session.sh)."""
    entries = sorted(open_extraction(str(shards)).index.values(), key=lambda e: e.video_id)
    keys = [(0, i) for i in range(len(entries))]
    codes, affine, _ = default_collate([TrainSamples(ShardStore(shards), entries, spec, Augment(), 1, 5)[k] for k in keys])
    stored = StoredTrainSamples(ShardStore(shards), entries, spec, Augment(), 1, 5)
    d_codes, d_affine, _ = DeviceDecoder(spec, torch.device("cuda"))(stored.collate([stored[k] for k in keys]))
    assert d_codes.device.type == "cuda" and d_codes.shape == codes.shape
    difference = (d_codes.cpu().int() - codes.int()).abs().float()
    assert difference.mean() < 0.5 and difference.max() <= (3 if spec.stream == "temporal" else 16)
    assert torch.equal(d_affine, affine)
