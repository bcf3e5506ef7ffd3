"""flowprep's own option helpers: the codec and size options' callbacks, --json, and what to do
when videos are not found. How every command ends (exit statuses, one-line errors) and the
options both commands share are runkit's (runkit.cli, runkit.options)."""
from __future__ import annotations

from pathlib import Path

import click

from flowprep.format.codecs import Codec, CodecError, parse_codec

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
OVERWRITE_HELP = "Discard an earlier extraction in --out made with another config."


def missing_hint(root: Path, given: bool) -> str:
    """What to do when videos are not found: a manifest's paths are relative to the video root."""
    how = "--video-root" if given else "by default the manifest's folder"
    return (f"hint: the manifest's paths are looked up under {root} ({how}); if the videos are elsewhere, "
            f"pass --video-root ROOT, the folder the paths are relative to")


def check_codec(ctx: click.Context, param: click.Parameter, value: str) -> Codec:
    """Callback of the codec options: the codec, parsed once (the config carries it), or a one-line
    error naming it."""
    try:
        return parse_codec(value)
    except CodecError as exc:
        raise click.BadParameter(str(exc)) from None


def parse_size(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
        if w > 0 and h > 0:
            return w, h
    except ValueError:
        pass
    raise click.BadParameter(f"expected WIDTHxHEIGHT with positive integers, e.g. 340x256; got {value!r}")
