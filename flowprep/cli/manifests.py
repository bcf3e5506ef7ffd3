"""`flowprep manifest ...`: build dataset manifests (UCF101, HMDB51, a class-folder tree, Kinetics
CSVs), and check one against the videos on disk."""
from __future__ import annotations

import json
from pathlib import Path

import click

from flowprep.cli.support import JSON_OPTION, missing_hint
from flowprep.format.manifest import ManifestEntry, write_manifest
from flowprep.manifests.check import CheckConfig, check_manifest
from flowprep.manifests.folder import VIDEO_EXTENSIONS, FolderManifestConfig, folder_manifest, path_prefix
from flowprep.manifests.kinetics import DEFAULT_TEMPLATE, check_template, kinetics_manifest
from flowprep.manifests.official import hmdb51_manifest, split_counts, ucf101_manifest
from runkit.cli import CONTEXT, EXIT_OK, EXIT_SOME_FAILED, usage_error
from runkit.options import workers_option


def _write(entries: list[ManifestEntry], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(out, entries)
    classes = len({e.label for e in entries})
    click.echo(f"wrote {out}: {len(entries)} videos, {classes} classes")
    for column, c in split_counts(entries).items():
        click.echo(f"  {column}: {c['train']} train / {c['test']} test / {c['unused']} unused")


@click.group("manifest", context_settings=CONTEXT)
def manifest_group() -> None:
    """Build dataset manifests, and check one against the videos on disk."""


_OUT = click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="Manifest CSV to write.")


@manifest_group.command()
@click.option("--splits-dir", required=True, type=click.Path(path_type=Path),
              help="Folder of the official ucfTrainTestlist: classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt.")
@_OUT
def ucf101(splits_dir: Path, out: Path) -> int:
    """UCF101 from its official split lists: 13,320 videos, 3 splits, paths <class>/<file>.avi."""
    _write(ucf101_manifest(splits_dir), out)
    return EXIT_OK


@manifest_group.command()
@click.option("--splits-dir", required=True, type=click.Path(path_type=Path),
              help="Folder of the official testTrainMulti_7030_splits: <class>_test_split<1-3>.txt.")
@_OUT
def hmdb51(splits_dir: Path, out: Path) -> int:
    """HMDB51 from its official split files: 6,766 clips, 3 splits, paths <class>/<clip>.avi."""
    _write(hmdb51_manifest(splits_dir), out)
    return EXIT_OK


@manifest_group.command()
@click.argument("root", type=click.Path(path_type=Path))
@_OUT
@click.option("--test-fraction", type=float, default=0.3, show_default=True, help="Share of each class's videos in test.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split: same seed, same split.")
@click.option("--ext", "extensions", multiple=True, metavar="EXT",
              help="Video file extensions to include; repeatable. Default: common video formats.")
def folder(root: Path, out: Path, test_fraction: float, seed: int, extensions: tuple[str, ...]) -> int:
    """Any ROOT/<class>/.../<video> tree, with a seeded train/test split stratified by class.

    Paths start from the manifest's folder when ROOT is inside it (check and extract then need no
    --video-root); otherwise from ROOT, and the readers need --video-root ROOT.
    """
    try:
        config = FolderManifestConfig(root, test_fraction, seed, extensions or VIDEO_EXTENSIONS)
    except ValueError as exc:
        raise usage_error(exc) from None
    _write(folder_manifest(config, manifest_dir=out.parent), out)
    if path_prefix(root, out.parent) is None:
        click.echo(f"paths are relative to {root}, which is not inside the manifest's folder {out.parent}: "
                   f"give --video-root {root} to 'flowprep manifest check' and 'flowprep extract' (or write the "
                   f"manifest at or above {root}, e.g. --out {root / 'manifest.csv'})")
    else:
        click.echo(f"paths are relative to the manifest's folder: 'flowprep manifest check {out}' and "
                   f"'flowprep extract --manifest {out}' find the videos without --video-root")
    return EXIT_OK


@manifest_group.command()
@click.argument("csv_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_OUT
@click.option("--path-template", default=None, metavar="TEMPLATE",
              help="Where a clip's file is, relative to the video root. Fields: {label} {label_dir} {youtube_id} "
                   "{time_start} {time_end} {split}. Default: {label}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4")
def kinetics(csv_files: tuple[Path, ...], out: Path, path_template: str | None) -> int:
    """Kinetics-style annotation CSVs (label,youtube_id,time_start,time_end,split), e.g. train.csv validate.csv."""
    try:
        template = check_template(path_template or DEFAULT_TEMPLATE)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--path-template'") from None
    _write(kinetics_manifest(list(csv_files), template), out)
    return EXIT_OK


@manifest_group.command()
@click.argument("manifest_path", metavar="MANIFEST", type=click.Path(path_type=Path))
@click.option("--video-root", type=click.Path(path_type=Path), default=None,
              help="Folder the manifest's paths are relative to. Default: the manifest's folder.")
@click.option("--full", is_flag=True, help="Decode every frame (finds truncated and damaged files; slow) instead of the first.")
@workers_option(1)
@JSON_OPTION
def check(manifest_path: Path, video_root: Path | None, full: bool, workers: int, as_json: bool) -> int:
    """Report missing, unreadable and damaged videos of MANIFEST before a long extraction. Exit 3 if any."""
    root = video_root if video_root is not None else manifest_path.parent
    report = check_manifest(CheckConfig(manifest_path, root, full, workers))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=1))
    else:
        for p in report.problems:
            click.echo(f"{p.kind}: {p.video_id}: {p.reason}")
        click.echo(f"{report.total} videos: {report.total - len(report.problems)} ok, {report.count('missing')} missing, "
                   f"{report.count('unreadable')} unreadable, {report.count('damaged')} damaged (video root {root})")
        if report.count("missing"):
            click.echo(missing_hint(root, video_root is not None))
    return EXIT_OK if report.ok else EXIT_SOME_FAILED
