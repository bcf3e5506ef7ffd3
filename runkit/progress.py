"""Progress on the console: a one-line bar redrawn in place on a terminal, plain log lines
otherwise (logs, CI, nohup). `ProgressBar` is the one implementation both commands draw with:
`Progress` here counts an extraction's videos, twostream.core.progress an epoch's batches."""
from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger("flowprep")


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


class Progress(ProgressBar):
    """Counts finished videos and frame pairs; reports rate and ETA."""

    def __init__(self, total: int, stream: TextIO | None = None, interactive: bool | None = None) -> None:
        super().__init__(total, 30, stream, interactive)
        self.done = 0
        self.failed = 0
        self.pairs = 0

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.elapsed if self.elapsed > 0 else 0.0

    def eta(self) -> float | None:
        if not self.done:
            return None
        return self.elapsed / self.done * (self.total - self.done)

    def note(self, message: str) -> None:
        """A log line that does not tear the bar: printed above it on a terminal."""
        if self.interactive:
            self.print_above(message)
            self.draw(self.done, self._status())
        else:
            log.info(message)

    def update(self, video_id: str, pairs: int, error: str | None) -> None:
        self.done += 1
        self.pairs += pairs
        if error:
            self.failed += 1
        if self.interactive:
            if error:  # failures stay visible above the bar
                self.print_above(f"failed {video_id}: {error}")
            self.draw(self.done, self._status())
        elif error:
            log.warning("[%s] failed %s: %s", self._status(), video_id, error)
        else:
            log.info("[%s] done %s (%d pairs)", self._status(), video_id, pairs)

    def _status(self) -> str:
        eta = self.eta()
        return (f"{self.done}/{self.total} videos, {self.pairs_per_second:.2f} pairs/s, "
                f"ETA {format_duration(eta) if eta is not None else '?'}"
                + (f", {self.failed} failed" if self.failed else ""))
