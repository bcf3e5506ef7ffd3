"""RUN/metrics.jsonl: the training log, one JSON object per epoch and phase."""
from __future__ import annotations

import json
from pathlib import Path

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """RUN/metrics.jsonl: one object per epoch and phase,
    {"epoch", "phase": "train"|"val", "loss", "accuracy" (clip top-1, 0..1), "lr", "samples_per_s", "time"}."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / METRICS_FILE

    def restart(self, completed_epochs: int) -> None:
        """Keep only the lines of completed epochs: a run killed after logging an epoch but before
        its checkpoint redoes that epoch, and must not log it twice."""
        kept = []
        if completed_epochs and self.path.exists():
            kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line)["epoch"] <= completed_epochs]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        tmp.replace(self.path)

    def write(self, epoch: int, phase: str, loss: float, accuracy: float, lr: float, samples_per_s: float,
              time: float) -> None:
        record = {"epoch": epoch, "phase": phase, "loss": float(loss), "accuracy": float(accuracy), "lr": float(lr),
                  "samples_per_s": float(samples_per_s), "time": float(time)}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
