"""Progress on the console: a one-line bar redrawn in place on a terminal, plain log lines
otherwise (logs, CI, nohup). `ProgressBar` is the one implementation both commands draw with:
flowprep.extract.progress counts an extraction's videos, twostream.core.progress an epoch's batches."""
from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


class ProgressBar:
    """`[###....] status` over `total` steps on `stream` (stderr by default), redrawn on one line
    when it is a terminal (`interactive` None: whether it is one). Off a terminal it draws
    nothing: what to log instead, and how often, is the command's (a subclass's)."""

    def __init__(self, total: int, width: int, stream: TextIO | None = None, interactive: bool | None = None) -> None:
        self.total, self.width = total, width
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def eta(self, done: int) -> float | None:
        """Seconds left at the pace so far, after `done` of `total` steps (None before the first)."""
        return self.elapsed / done * (self.total - done) if done else None

    def draw(self, done: int, status: str) -> None:
        """The bar after `done` of `total` steps, followed by `status`, in place of the previous one."""
        filled = int(self.width * done / max(1, self.total))
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {status}\x1b[K")
        self.stream.flush()

    def print_above(self, line: str) -> None:
        """`line` where the bar is, the bar to be drawn again below it (a terminal only)."""
        self.stream.write(f"\r\x1b[K{line}\n")

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
