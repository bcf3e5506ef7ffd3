"""flowprep's one public surface for other packages: what twostream calls to compute exactly what
the extraction computed, never a copy of it.

twostream reads extraction folders through flowprep.format (the on-disk contract). Two of its parts
must also compute as flowprep does: `twostream predict` gives a new video the input the runs were
trained on (decoded, sampled, resized, flowed as the extraction did, from the ExtractConfig a
checkpoint stores; its flow pictures drawn as `flowprep show` draws them), and the learned-flow
stream's stem is tvl1-torch's own iterations as a network layer. Those names, and no others, are
listed here; outside flowprep.format this is the only flowprep module twostream may import
(tests/test_layout.py holds it to that), so flowprep's inside can move without breaking twostream.
Importing it does not import torch: the layer, which does, is loaded when first named.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from flowprep.extract.config import ExtractConfig, ImportConfig, parse_shard_settings
from flowprep.extract.decode import VideoError, VideoInfo, open_video
from flowprep.extract.frames import FrameSampler, resize, to_gray
from flowprep.extract.video_job import SampledFrames, both_directions, check_length, frame_sampler, frame_size
from flowprep.flow.backend import BatchFlow, FlowError
from flowprep.flow.tvl1.params import LAYER_PARAMS, layer_params
from flowprep.manifests.folder import VIDEO_EXTENSIONS
from flowprep.tools.flow_viz import flow_to_rgb, hstack, labelled

if TYPE_CHECKING:  # at run time: __getattr__ below
    from flowprep.flow.tvl1.layer import TVL1Layer

__all__ = [
    # the extraction's settings, as a checkpoint stores them
    "ExtractConfig", "ImportConfig", "parse_shard_settings",
    # a video decoded, its frames sampled and resized as a shard's were
    "VideoError", "VideoInfo", "open_video", "FrameSampler", "resize", "to_gray",
    "SampledFrames", "both_directions", "check_length", "frame_sampler", "frame_size",
    # the flow of those frames, by the extraction's method
    "BatchFlow", "FlowError",
    # the files `twostream predict` takes as videos in a folder
    "VIDEO_EXTENSIONS",
    # flow pictures (predict --live)
    "flow_to_rgb", "hstack", "labelled",
    # the learned-flow stream's layer, and its parameters as a run's config states them
    "TVL1Layer", "LAYER_PARAMS", "layer_params",
]


def __getattr__(name: str):
    # the layer on first use only: it imports torch, and a run's config (which checks the layer's
    # parameters) is read by commands that must start without it (`--help`: test_cli_vocabulary)
    if name == "TVL1Layer":
        from flowprep.flow.tvl1.layer import TVL1Layer

        return TVL1Layer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
