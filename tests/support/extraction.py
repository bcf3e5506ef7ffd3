"""Tiny real extractions for the inspect / verify / show / rawframes tests: synthetic videos with
known motion through `run_extract` (Farneback, small frames: a fraction of a second), and the
`flowprep` CLI run in-process."""
from __future__ import annotations

from pathlib import Path

import pytest

from flowprep.cli.main import main
from flowprep.extract.config import ExtractConfig, ExtractRun
from flowprep.extract.run import run_extract
from tests.support.videos import moving_square_frames, write_video

WIDTH, HEIGHT, FRAMES = 128, 96, 8
MOTIONS = {"right": (2, 0), "down": (0, 2), "left": (-2, 0), "up": (0, -2)}


def make_videos(root: Path, motions: dict[str, tuple[int, int]], frames: int = FRAMES, missing: bool = False) -> Path:
    """Videos of a square moving as `motions` says, and a manifest (classes = motion names,
    the first half train); `missing` adds a row whose file does not exist."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["video_id,path,label,label_name,split1"]
    for label, (name, velocity) in enumerate(motions.items()):
        write_video(root / f"{name}.avi", moving_square_frames(frames, WIDTH, HEIGHT, velocity=velocity, seed=label))
        rows.append(f"{name},{name}.avi,{label},{name},{'train' if label < len(motions) / 2 else 'test'}")
    if missing:
        rows.append("ghost,ghost.avi,0,right,train")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


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


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`flowprep ARGS` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err
