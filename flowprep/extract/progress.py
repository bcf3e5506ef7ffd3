"""Progress of an extraction: a one-line bar on a terminal, plain log lines otherwise."""
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


class Progress:
    """Counts finished videos and frame pairs; reports rate and ETA."""

    def __init__(self, total: int, stream: TextIO | None = None, interactive: bool | None = None) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.pairs = 0
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

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
            self.stream.write(f"\r\x1b[K{message}\n")
            self._draw()
        else:
            log.info(message)

    def update(self, video_id: str, pairs: int, error: str | None) -> None:
        self.done += 1
        self.pairs += pairs
        if error:
            self.failed += 1
        if self.interactive:
            if error:  # failures stay visible above the bar
                self.stream.write(f"\r\x1b[Kfailed {video_id}: {error}\n")
            self._draw()
        elif error:
            log.warning("[%s] failed %s: %s", self._status(), video_id, error)
        else:
            log.info("[%s] done %s (%d pairs)", self._status(), video_id, pairs)

    def _status(self) -> str:
        eta = self.eta()
        return (f"{self.done}/{self.total} videos, {self.pairs_per_second:.2f} pairs/s, "
                f"ETA {format_duration(eta) if eta is not None else '?'}"
                + (f", {self.failed} failed" if self.failed else ""))

    def _draw(self) -> None:
        width = 30
        filled = int(width * self.done / max(1, self.total))
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self._status()}\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
