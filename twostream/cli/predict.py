"""`twostream predict` (new videos, or a live stream, with trained runs) and `twostream export`
(a run's network as TorchScript or ONNX with its input contract): options -> twostream.predict."""
from __future__ import annotations

import json
from pathlib import Path

import click

from runkit.cli import CONTEXT, EXIT_SOME_FAILED
from runkit.options import device_option, out_folder_option
from twostream.core.config import CROPS, DEVICE_HELP

FAST_HELP = "3 clips x the centre crop: about 80x less network work than the paper's 25 x 10."


def _split_runs(paths: tuple[Path, ...]) -> tuple[list[Path], list[Path]]:
    """The leading run folders or checkpoints (at most two), then the videos and folders of videos."""
    from twostream.core.run_folder import CHECKPOINT_FILE

    runs = []
    for path in paths:
        if len(runs) < 2 and ((path / CHECKPOINT_FILE).is_file() or (path.is_file() and path.suffix == ".pt")):
            runs.append(path)
        else:
            break
    return runs, list(paths[len(runs):])


@click.command("predict", context_settings=CONTEXT)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path), metavar="RUN [RUN] VIDEO_OR_FOLDER...")
@click.option("--fusion", default=None, metavar="FUSED|RUN|METHOD",
              help="How two streams' scores are combined: a 'twostream fuse' folder (its best method, or "
                   "--fusion-method), a method (average, weighted) or a 'fuse-features train' run (which needs no "
                   "stream runs). Default: weighted, as fuse's.")
@click.option("--fusion-method", default=None, metavar="METHOD", help="Which method of the --fusion folder.")
@click.option("--top", "top_k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Classes shown per video.")
@click.option("--clips", type=click.IntRange(min=1), default=None,
              help="Frames or stacks per video, uniformly spaced. Default: 25 (live: 1).")
@click.option("--crops", type=click.Choice(CROPS), default=None,
              help="The test crops (evaluate's). Default: ten (live: center).")
@click.option("--fast", is_flag=True, help=FAST_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Clips per batch.")
@device_option(help=f"{DEVICE_HELP} (auto: a GPU when there is one).")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="Torch CPU threads (0: torch's default).")
@out_folder_option("Folder of predictions.json and predictions.csv (live: live.json and annotated.avi).",
                   dest="out", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
@click.option("--live", metavar="SOURCE", default=None,
              help="Classify a stream as it comes: a camera index (0), a video file played as a stream, or an "
                   "RTSP/HTTP URL OpenCV opens; then only the runs are given.")
@click.option("--every", type=click.IntRange(min=1), default=10, show_default=True,
              help="Live: a label due every N frames (skipped while the networks still score the last).")
@click.option("--window", type=click.IntRange(min=0), default=0, show_default=True,
              help="Live: frames in the sliding window (0: what the runs' input needs, L + 1 for a flow stack).")
@click.option("--show", is_flag=True, help="Live: draw the label and the flow in a window (where there is a display).")
@click.option("--stop-after", "max_frames", type=click.IntRange(min=1), default=None, metavar="N",
              help="Live: stop after N frames of the stream.")
def predict(paths: tuple[Path, ...], fusion: str | None, fusion_method: str | None, top_k: int, clips: int | None,
            crops: str | None, fast: bool, batch_size: int, device: str, threads: int, out: Path | None,
            as_json: bool, live: str | None, every: int, window: int, show: bool, max_frames: int | None) -> int:
    """Classify new videos with trained runs: the top classes of each VIDEO (or of every video in
    a FOLDER), computed as the runs were trained (the extraction's settings, recorded in the
    runs) and tested (evaluate's protocol), the two streams fused.

    RUN is a 'twostream train' run folder (or checkpoint): a spatial one, a temporal one or both.
    A video that cannot be read gets one line, and the others go on.
    """
    runs, videos = _split_runs(paths)
    if not runs and not (fusion and Path(fusion).exists()):
        raise click.UsageError("give the run folders first: twostream predict RUN_SPATIAL RUN_TEMPORAL VIDEO...")
    if live is None and not videos:
        raise click.UsageError("give the videos (or folders of videos) to classify after the runs, or --live SOURCE")
    if live is not None and videos:
        raise click.UsageError(f"--live classifies its SOURCE; {videos[0]} is not a run folder")
    if fast and (clips or crops):
        raise click.UsageError("--fast sets --clips and --crops; give either")
    from twostream.core.device import setup_threads
    from twostream.predict import predictor as p

    setup_threads(threads)
    if live is not None:
        from twostream.predict.live import run_live

        predictor = p.Predictor.load(*runs, fusion=fusion, fusion_method=fusion_method, clips=clips or 1,
                                     crops=crops or "center", device=device, batch_size=batch_size)
        run_live(predictor, live, every=every, window=window, show=show, out_dir=out, max_frames=max_frames,
                 top_k=top_k, echo=click.echo)
        return 0
    clips, crops = (p.FAST_CLIPS, p.FAST_CROPS) if fast else (clips or p.DEFAULT_CLIPS, crops or p.DEFAULT_CROPS)
    predictor = p.Predictor.load(*runs, fusion=fusion, fusion_method=fusion_method, clips=clips, crops=crops,
                                 device=device, batch_size=batch_size)
    from twostream.predict import results as r
    from twostream.predict.video_input import video_files

    files = video_files(videos)
    if not files:
        raise click.UsageError(f"no video files in {', '.join(map(str, videos))}")
    click.echo(f"{len(files)} video(s); {predictor.describe}", err=True)
    found = list(predictor.predict_files(files))  # a video that cannot be read is a Failure: the others go on
    if as_json:
        click.echo(json.dumps(r.records(found, top_k), indent=1))
    else:
        click.echo(r.table(found, top_k))
    if out is not None:
        about = {"runs": [str(s.checkpoint) for s in predictor.scorers], "method": predictor.describe}
        written = r.write(out, found, top_k, about)
        click.echo(f"wrote {', '.join(map(str, written))}", err=True)
    failed = sum(isinstance(x, p.Failure) for x in found)
    return EXIT_SOME_FAILED if failed else 0


@click.command("export", context_settings=CONTEXT)
@click.argument("run", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(("torchscript", "onnx")), default="torchscript", show_default=True,
              help="onnx needs the onnx package (pip install 'twostream[onnx]').")
@out_folder_option("Folder of the model file and its contract.json. Default: RUN/export.", dest="out", required=False)
def export_command(run: Path, fmt: str, out: Path | None) -> int:
    """Write a run's network (a stream's, or a fuse-features run's over both streams) as
    TorchScript or ONNX, with its input contract beside it (contract.json: shape, normalisation,
    flow layout, the extraction settings that make the input, class names)."""
    from twostream.predict.export import export
    from twostream.predict.predictor import checkpoint_path, load_scorer

    scorer = load_scorer(run)
    model, contract = export(scorer, fmt, out or checkpoint_path(run).parent / "export")
    click.echo(f"wrote {model} and {contract}")
    return 0
