"""A progress bar per epoch on a terminal; a few log lines otherwise (logs, CI, nohup)."""
from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta
from typing import TextIO

log = logging.getLogger("twostream")

LOG_EVERY_S = 30.0  # without a terminal: one line at most this often, and one at the end


class EpochProgress:
    def __init__(self, title: str, total_batches: int, stream: TextIO | None = None,
                 interactive: bool | None = None) -> None:
        self.title, self.total = title, total_batches
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.started = self.last_log = time.perf_counter()
        self.batches = self.samples = 0
        self.status = ""

    def update(self, samples: int, **values: float) -> None:
        """One more batch of `samples`; `values` (running loss, accuracy...) are shown."""
        self.batches += 1
        self.samples += samples
        now = time.perf_counter()
        elapsed = now - self.started
        rate = self.samples / elapsed if elapsed > 0 else 0.0
        eta = elapsed / self.batches * (self.total - self.batches)
        shown = " ".join(f"{k} {v:.4f}" for k, v in values.items())
        self.status = f"{self.title} {self.batches}/{self.total} {shown} {rate:.1f} samples/s"
        if self.interactive:
            width = 24
            filled = int(width * self.batches / max(1, self.total))
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.status} ETA {timedelta(seconds=int(eta))}\x1b[K")
            self.stream.flush()
        elif now - self.last_log >= LOG_EVERY_S and self.batches < self.total:
            self.last_log = now
            log.info("%s ETA %s", self.status, timedelta(seconds=int(eta)))

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
