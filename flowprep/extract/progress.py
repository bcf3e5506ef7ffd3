"""An extraction's progress: the videos done, frame pairs a second and the time left, on
runkit's bar on a terminal, as log lines otherwise."""
from __future__ import annotations

import logging
from typing import TextIO

from runkit.progress import ProgressBar, format_duration

log = logging.getLogger("flowprep")


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
        eta = self.eta(self.done)
        return (f"{self.done}/{self.total} videos, {self.pairs_per_second:.2f} pairs/s, "
                f"ETA {format_duration(eta) if eta is not None else '?'}"
                + (f", {self.failed} failed" if self.failed else ""))
