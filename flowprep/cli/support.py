"""Running a click command group the way every command of this project behaves:
one-line errors naming the bad value, no tracebacks for anything the user can fix, and exit
statuses that scripts can rely on."""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import click

from flowprep.format.codecs import Codec, CodecError, parse_codec
from flowprep.format.faults import quiet_hdf5_after_disk_full
from flowprep.format.signals import Stop, install, received

EXIT_OK = 0
EXIT_ERROR = 1  # the environment's (disk full, permissions)
EXIT_USAGE = 2  # bad option or bad input
EXIT_SOME_FAILED = 3  # finished, but some items failed (e.g. videos in failures.jsonl)
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)
EXIT_TERMINATED = 143  # SIGTERM (kill, a scheduler's time limit): flowprep.format.signals

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
VERBOSE = click.option("-v", "--verbose", is_flag=True, help="Debug logging.")

# The options both commands (flowprep and twostream) share, defined once so that a name means one
# thing everywhere (docs/cli.md has the whole vocabulary). `--workers` is always processes with
# 0 = all cores; the DataLoader's worker processes (0 = none) are `--loader-workers`.
DEVICE_DEFAULT = "auto"  # a GPU when there is one (and the work can use it), else the CPU


def _subcommand_path(ctx: click.Context) -> str:
    """The command's words after the program's name: 'manifest folder', not only 'folder'."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(names))


def workers_option(default: int, help: str = "Parallel processes (0 = all cores).") -> Callable:
    return click.option("--workers", type=click.IntRange(min=0), default=default, show_default=True, help=help)


def loader_workers_option(default: int = 2) -> Callable:
    return click.option("--loader-workers", "workers", type=click.IntRange(min=0), default=default,
                        show_default=True, help="DataLoader worker processes (0: load in the main process).")


def device_option(help: str) -> Callable:
    return click.option("--device", default=DEVICE_DEFAULT, show_default=True, help=help)


def out_folder_option(help: str, dest: str = "out_dir", required: bool = True) -> Callable:
    """--out: the folder a command writes into (only `manifest *` and `show`, which write one named
    file, take --out FILE)."""
    return click.option("--out", dest, required=required, default=None,
                        type=click.Path(path_type=Path, file_okay=False), help=help)


JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
OVERWRITE_HELP = "Discard an earlier extraction in --out made with another config."


def missing_hint(root: Path, given: bool) -> str:
    """What to do when videos are not found: a manifest's paths are relative to the video root."""
    how = "--video-root" if given else "by default the manifest's folder"
    return (f"hint: the manifest's paths are looked up under {root} ({how}); if the videos are elsewhere, "
            f"pass --video-root ROOT, the folder the paths are relative to")


def configure_logging(verbose: bool) -> None:
    """The log format of both commands, flowprep and twostream."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def usage_error(exc: ValueError) -> click.UsageError:
    """A config's validation error as a usage error: one line, exit status 2."""
    return click.UsageError(str(exc))


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


def run_click(group: click.Group, prog: str, user_errors: tuple[type[BaseException], ...],
              argv: list[str] | None = None, renamed: dict[tuple[str, str], str] | None = None) -> None:
    """Run `group` and exit with its status; errors of the types in `user_errors` (and usage
    errors, and OSError) become `prog: error: <message>` on one line; SIGINT and SIGTERM end with
    one line and 130 or 143 (flowprep.format.signals). `renamed` maps (command, old option) to what
    replaced it, so that an old script is told the new name."""
    quiet_hdf5_after_disk_full()
    install()
    try:
        status = group.main(args=argv, prog_name=prog, standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt, Exception) as exc:  # noqa: BLE001  _report re-raises bugs
        sys.exit(_report(exc, prog, user_errors, renamed))
    sys.exit(status if isinstance(status, int) else EXIT_OK)


def _report(exc: BaseException, prog: str, user_errors: tuple[type[BaseException], ...],
            renamed: dict[tuple[str, str], str] | None = None) -> int:
    """The one line of an error or a stop, written to stderr; its exit status."""
    stop = exc if isinstance(exc, Stop) else exc.__cause__ if isinstance(exc.__cause__, Stop) else None
    if stop is None and received() is not None:
        # what failed after a stop signal is its consequence (worker processes killed with their
        # group end the run with their own error): the stop is what to report
        stop = Stop(received())
    if stop is not None or isinstance(exc, (click.exceptions.Abort, KeyboardInterrupt)):
        if stop is not None and stop.message:  # the command said what it kept (training: its checkpoint)
            click.echo(f"{prog}: {stop.message}", err=True)
        elif stop is not None and stop.status == EXIT_TERMINATED:
            click.echo(f"{prog}: terminated ({stop.name}); run the same command again to resume", err=True)
        else:
            click.echo(f"{prog}: interrupted; run the same command again to resume", err=True)
        return stop.status if stop is not None else EXIT_INTERRUPTED
    if isinstance(exc, click.exceptions.UsageError):
        ctx = exc.ctx
        hint = f" (see '{prog} {_subcommand_path(ctx)} --help')" if ctx is not None and ctx.parent is not None else ""
        message = exc.format_message()
        if isinstance(exc, click.exceptions.NoSuchOption) and ctx is not None:
            new = (renamed or {}).get((ctx.info_name, exc.option_name))
            if new:
                message = f"no such option {exc.option_name}: it is {new} now (docs/cli.md)"
        click.echo(f"{prog}: error: {message}{hint}", err=True)
        return EXIT_USAGE
    if isinstance(exc, click.exceptions.ClickException):
        click.echo(f"{prog}: error: {exc.format_message()}", err=True)
        return exc.exit_code
    if isinstance(exc, user_errors):
        click.echo(f"{prog}: error: {exc}", err=True)
        return EXIT_USAGE
    if isinstance(exc, OSError):
        click.echo(f"{prog}: error: {exc}", err=True)
        return EXIT_ERROR
    raise exc  # a bug: its traceback
