"""The user-facing errors of train and evaluate: str() is the one-line message naming the bad
thing. Here, apart from the code that raises them, so that the CLI can list them without
importing torch."""


class TrainError(ValueError):
    """A run that cannot start or continue as asked."""


class DataError(ValueError):
    """Input data that cannot serve the requested run (split, stack length, crop size...)."""


class ModelError(ValueError):
    """Weights or a backbone that cannot be used; names the file or value and the alternatives."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; names the file."""


def from_worker(exc: Exception) -> Exception:
    """An error raised in a DataLoader worker, as its own one line again: torch raises it anew in
    the main process with the worker's whole traceback in its message."""
    text = str(exc)
    if "Original Traceback" not in text:
        return exc
    last = text.strip().splitlines()[-1]
    return type(exc)(last.split(": ", 1)[1] if ": " in last else last)
