"""An epoch's progress: runkit's bar (runkit.progress) over its batches on a terminal;
a few log lines otherwise (logs, CI, nohup)."""
from __future__ import annotations

import logging
import time
from typing import TextIO

from runkit.progress import ProgressBar, format_duration

log = logging.getLogger("twostream")

LOG_EVERY_S = 30.0  # without a terminal: one line at most this often, and one at the end


class EpochProgress(ProgressBar):
    def __init__(self, title: str, total_batches: int, stream: TextIO | None = None,
                 interactive: bool | None = None) -> None:
        super().__init__(total_batches, 24, stream, interactive)
        self.title = title
        self.last_log = self.started
        self.batches = self.samples = 0
        self.status = ""

    def update(self, samples: int, **values: float) -> None:
        """One more batch of `samples`; `values` (running loss, accuracy...) are shown."""
        self.batches += 1
        self.samples += samples
        now = time.perf_counter()
        elapsed = now - self.started
        rate = self.samples / elapsed if elapsed > 0 else 0.0
        eta = self.eta(self.batches)
        shown = " ".join(f"{k} {v:.4f}" for k, v in values.items())
        self.status = f"{self.title} {self.batches}/{self.total} {shown} {rate:.1f} samples/s"
        if self.interactive:
            self.draw(self.batches, f"{self.status} ETA {format_duration(eta)}")
        elif now - self.last_log >= LOG_EVERY_S and self.batches < self.total:
            self.last_log = now
            log.info("%s ETA %s", self.status, format_duration(eta))
