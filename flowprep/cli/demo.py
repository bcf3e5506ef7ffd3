"""`flowprep make-demo-data`: the embedded demo dataset (docs/demo.md)."""
from __future__ import annotations

import logging
from pathlib import Path

import click

from flowprep.cli.support import parse_size
from flowprep.demo.data import MANIFEST_FILE, DemoConfig, write_demo_dataset
from runkit.cli import CONTEXT

log = logging.getLogger(__name__)


@click.command("make-demo-data", context_settings=CONTEXT)
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False), help="Output folder.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="Everything is drawn from it.")
@click.option("--videos-per-class", type=int, default=DemoConfig.videos_per_class, show_default=True)
@click.option("--frames", type=int, default=DemoConfig.frames, show_default=True, help="Frames per video.")
@click.option("--size", default=f"{DemoConfig.width}x{DemoConfig.height}", show_default=True, callback=parse_size,
              metavar="WxH", help="Frame size in pixels.")
@click.option("--test-per-class", type=int, default=None,
              help="Videos of each class in split1's test part (the others are train). Default: a third.")
@click.option("--jitter", type=float, default=DemoConfig.jitter, show_default=True, help="Camera shake, max pixels.")
def make_demo_data(out_dir: Path, seed: int, videos_per_class: int, frames: int, size: tuple[int, int],
                   test_per_class: int | None, jitter: float) -> int:
    """Generate the demo dataset: appearance x motion classes that need both streams (docs/demo.md).

    Writes OUT/videos/*.avi (FFV1), OUT/manifest.csv (for `flowprep extract --manifest`) and
    OUT/demo_config.json. The same options give byte-identical files.
    """
    config = DemoConfig(seed=seed, videos_per_class=videos_per_class, frames=frames, width=size[0], height=size[1],
                        test_per_class=test_per_class, jitter=jitter)
    log.info("demo config: %s", config.to_json())
    entries = write_demo_dataset(out_dir, config)
    test = sum(1 for e in entries if e.splits_dict["split1"] == "test")
    click.echo(f"{len(entries)} videos ({len(entries) - test} train, {test} test) of {len(config.classes)} classes "
               f"({len(config.appearances)} appearances x {len(config.motions)} motions), "
               f"{config.frames} frames of {config.width}x{config.height}")
    click.echo(f"manifest: {out_dir / MANIFEST_FILE}")
    return 0
