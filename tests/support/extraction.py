"""Tiny real extractions for the inspect / verify / show / rawframes tests: synthetic videos with
known motion (tests.support.videos.make_videos) through `run_extract` (Farneback, small frames: a
fraction of a second)."""
from __future__ import annotations

from pathlib import Path

from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
from tests.support.videos import HEIGHT, WIDTH


def extract(manifest: Path, out: Path, **config) -> Path:
    options = {"flow_method": "farneback", "width": WIDTH, "height": HEIGHT, **config}
    run_extract(ExtractRun(manifest, manifest.parent, out, ExtractConfig(**options), workers=1), interactive=False)
    return out


def extract_demo(root: Path, demo) -> Path:
    """A demo dataset (flowprep.demo.data.DemoConfig `demo`) written under root/data and extracted
    with DIS at its own size into root/shards, in this process; the shards folder."""
    from flowprep.demo.data import write_demo_dataset

    write_demo_dataset(root / "data", demo)
    config = ExtractConfig(flow_method="dis", width=demo.width, height=demo.height)
    run_extract(ExtractRun(root / "data" / "manifest.csv", root / "data", root / "shards", config, workers=1),
                interactive=False)
    return root / "shards"
