"""RUN/metrics.jsonl: the training log, one JSON object per epoch and phase."""
from __future__ import annotations

import json
from pathlib import Path

from runkit.files import open_for_writing, parse_json, read_regular_text, real_folder, write_text_atomic
from twostream.core.run_folder import METRICS_FILE

# which videos a "val" record was measured on (its "subset"; records written before it was kept lack it)
HELD_OUT = "held-out"  # training videos kept out of training (train --holdout)
ON_TEST = "test"  # the split's test videos (--val-on-test)
REQUIRED_KEYS = ("epoch", "phase", "loss", "accuracy")  # what every reader needs; lr may be absent (older logs)


class MetricsLogError(ValueError):
    """A metrics file that cannot be read, or a line of it that is not a record; str() names the
    file (and the line) in one line."""


TENSORBOARD_DIR = "tensorboard"  # RUN/tensorboard/: event files with the scalars of metrics.jsonl
SCALARS = ("loss", "accuracy", "lr", "samples_per_s", "time")  # a record's numbers, as TensorBoard tags PHASE/NAME


class TensorBoardMissing(RuntimeError):
    """--tensorboard asked for, and the tensorboard package is not installed."""


def tensorboard_writer(run_folder: Path, wanted: bool | None, completed_epochs: int):
    """A SummaryWriter into RUN/tensorboard, or None: `wanted` None means when tensorboard is
    installed. A resumed run purges the steps after its completed epochs, as restart() does the lines."""
    if wanted is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter  # deferred: an optional extra
    except ImportError:
        if wanted:
            raise TensorBoardMissing("--tensorboard needs the tensorboard package: pip install 'twostream[tensorboard]' "
                                     "(or pip install tensorboard)") from None
        return None
    folder = real_folder(Path(run_folder) / TENSORBOARD_DIR)  # never a link to a folder elsewhere
    return SummaryWriter(str(folder), purge_step=completed_epochs + 1 if completed_epochs else None)


class MetricsLog:
    """RUN/metrics.jsonl: one object per epoch and phase,
    {"epoch", "phase": "train"|"val", "loss", "accuracy" (clip top-1, 0..1), "lr", "samples_per_s", "time"},
    and on "val" records "subset": HELD_OUT or ON_TEST, the videos validated on."""

    def __init__(self, run_folder: Path, tensorboard=None) -> None:
        self.path = Path(run_folder) / METRICS_FILE
        self.tensorboard = tensorboard  # a SummaryWriter (tensorboard_writer) that gets every record's SCALARS

    def restart(self, completed_epochs: int) -> None:
        """Keep only the lines of completed epochs: a run killed after logging an epoch but before
        its checkpoint redoes that epoch, and must not log it twice."""
        kept = []
        if completed_epochs and self.path.exists():
            kept = [line for line in read_regular_text(self.path).splitlines()
                    if line.strip() and parse_json(line, dict)["epoch"] <= completed_epochs]
        write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def write(self, epoch: int, phase: str, loss: float, accuracy: float, lr: float, samples_per_s: float,
              time: float, subset: str | None = None) -> None:
        record = {"epoch": epoch, "phase": phase, "loss": float(loss), "accuracy": float(accuracy), "lr": float(lr),
                  "samples_per_s": float(samples_per_s), "time": float(time)}
        if subset is not None:
            record["subset"] = subset
        with open_for_writing(self.path, binary=False, append=True) as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for name in SCALARS:
                self.tensorboard.add_scalar(f"{phase}/{name}", record[name], epoch)
            self.tensorboard.flush()  # a TensorBoard already open sees each epoch as it ends

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()

    @staticmethod
    def read(path: str | Path) -> list[dict]:
        """The records of the metrics file at `path` (a run's metrics.jsonl, or a copy of one under
        any name), in file order, each checked and with epoch an int, phase a str, and loss,
        accuracy and lr (None when absent) floats. Blank lines are skipped."""
        try:
            lines = read_regular_text(Path(path)).splitlines()
        except FileNotFoundError:
            raise MetricsLogError(f"{path}: metrics file not found") from None
        except (OSError, ValueError) as exc:
            raise MetricsLogError(f"{path}: unreadable metrics file: {exc}") from None
        return [_record(line, f"{path} line {lineno}") for lineno, line in enumerate(lines, start=1) if line.strip()]


def _record(line: str, where: str) -> dict:
    """One line as a record; a MetricsLogError starting with `where` if it is not one."""
    try:
        record = parse_json(line)
    except ValueError as exc:
        raise MetricsLogError(f"{where}: not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise MetricsLogError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise MetricsLogError(f"{where}: lacks {', '.join(missing)}; a metrics line needs {', '.join(REQUIRED_KEYS)}")
    try:
        return {**record, "epoch": int(record["epoch"]), "phase": str(record["phase"]), "loss": float(record["loss"]),
                "accuracy": float(record["accuracy"]), "lr": None if record.get("lr") is None else float(record["lr"])}
    except (TypeError, ValueError):
        raise MetricsLogError(f"{where}: epoch must be an integer and loss, accuracy, lr numbers; "
                              f"got {line.strip()[:120]}") from None
