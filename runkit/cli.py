"""How every command of both tools ends: a click command group run so that errors are one line
naming the bad value, no tracebacks for anything the user can fix, and exit statuses that scripts
can rely on (the options both commands share: runkit.options)."""
from __future__ import annotations

import logging
import sys

import click

from runkit.faults import quiet_hdf5_after_disk_full
from runkit.signals import Stop, install, received

EXIT_OK = 0
EXIT_ERROR = 1  # the environment's (disk full, permissions)
EXIT_USAGE = 2  # bad option or bad input
EXIT_SOME_FAILED = 3  # finished, but some items failed (e.g. videos in failures.jsonl)
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)
EXIT_TERMINATED = 143  # SIGTERM (kill, a scheduler's time limit): runkit.signals

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
VERBOSE = click.option("-v", "--verbose", is_flag=True, help="Debug logging.")


def _subcommand_path(ctx: click.Context) -> str:
    """The command's words after the program's name: 'manifest folder', not only 'folder'."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(names))


def configure_logging(verbose: bool) -> None:
    """The log format of both commands, flowprep and twostream."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def usage_error(exc: ValueError) -> click.UsageError:
    """A config's validation error as a usage error: one line, exit status 2."""
    return click.UsageError(str(exc))


def run_click(group: click.Group, prog: str, user_errors: tuple[type[BaseException], ...],
              argv: list[str] | None = None, renamed: dict[tuple[str, str], str] | None = None) -> None:
    """Run `group` and exit with its status; errors of the types in `user_errors` (and usage
    errors, and OSError) become `prog: error: <message>` on one line; SIGINT and SIGTERM end with
    one line and 130 or 143 (runkit.signals). `renamed` maps (command, old option) to what
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
