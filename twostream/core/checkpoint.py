"""Checkpoints: written atomically, read with `torch.load(weights_only=True)`, checked before use.

A checkpoint is a dict of tensors and plain values only (no pickled objects), so loading it runs
no code:
    format          "twostream-checkpoint"
    format_version  1
    config          TrainConfig as JSON
    stream, backbone, in_channels, num_classes, class_names
    extract_config  the settings the shards were made with, as JSON (flow method, bound, size...; or an import's)
    epoch           completed epochs
    elapsed         training seconds so far (metrics' "time" continues from it on resume)
    model           the StreamModel's state dict
    optimizer       the SGD state dict (momentum buffers)
    scaler          the AMP GradScaler state dict ({} when unused)
    metrics         the last epoch's train (and val) metrics
  and, in a checkpoint saved mid-epoch (a run stopped by SIGTERM or SIGINT: twostream.engine.fit_loop):
    epoch_totals    the next epoch's batches done and what they added up to (loss sum, correct, samples,
                    seconds): twostream.engine.loops.EpochTotals; epoch_totals_of_processes: every
                    torchrun process's, in rank order
    rng             torch's random state at that batch boundary ({"cpu": ..., "cuda": ...})
The learning rate is a pure function of the epoch (twostream.core.schedule) and every random draw of an
epoch is seeded by (seed, epoch), so optimizer, epoch and config restore the complete state; mid-epoch,
the batches done are skipped and the random state restored.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from runkit.faults import fault_point
from runkit.files import NotRegularFileError, check_replaceable, open_for_writing, open_regular
from twostream.core.config import TrainConfig
from twostream.core.errors import CheckpointError

STREAM_FORMAT = "twostream-checkpoint"
STREAM_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointFormat:
    """A kind of checkpoint (a stream's here, a fusion run's in twostream.feature_fusion.checkpoint): its format tag
    and version, the words its errors name it by, and the JSON configs it stores, parsed on loading."""
    tag: str
    version: int
    name: str  # "not a NAME (no format ...)"
    versioned: str  # "VERSIONED format version N, but this code reads version ..."
    configs: Mapping[str, Callable[[str], Any]]  # stored key -> its from_json, applied in this order
    refused: Mapping[str, str] = field(default_factory=dict)  # another kind's tag -> why it is not this kind


STREAM_CHECKPOINT_FORMAT = CheckpointFormat(STREAM_FORMAT, STREAM_FORMAT_VERSION, "twostream checkpoint", "checkpoint",
                                     {"config": TrainConfig.from_json})


def save_checkpoint(path: str | Path, state: dict[str, Any], kind: CheckpointFormat = STREAM_CHECKPOINT_FORMAT) -> None:
    """Write `state` (plus format and version) to `path` atomically: a kill leaves the old file or the new."""
    path = Path(path)
    check_replaceable(path)
    tmp = path.with_name(path.name + ".tmp")
    with open_for_writing(tmp) as fh:  # never through a link planted in the run folder
        torch.save({"format": kind.tag, "format_version": kind.version, **state}, fh)
        fh.flush()
        fault_point("checkpoint-write")
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fault_point("checkpoint-saved")


def read_checkpoint(path: str | Path, kind: CheckpointFormat) -> dict[str, Any]:
    """Read a checkpoint of `kind` on the CPU, without running pickled code; configs parsed; errors name the file."""
    path = Path(path)
    try:
        with open_regular(path) as fh:  # a FIFO named checkpoint.pt never hangs the reader
            state = torch.load(fh, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} not found") from None
    except NotRegularFileError as exc:
        raise CheckpointError(str(exc)) from None
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated?): "
                              f"{' '.join(str(exc).split())[:200]}") from None
    tag = state.get("format") if isinstance(state, dict) else None
    if tag != kind.tag:
        why = kind.refused.get(tag) if isinstance(tag, str) else None  # (a tag need not be hashable)
        raise CheckpointError(f"{path} {why}" if why else f"{path}: not a {kind.name} (no format {kind.tag!r})")
    version = state.get("format_version")
    if version != kind.version:
        raise CheckpointError(f"{path}: {kind.versioned} format version {version!r}, but this code reads version "
                              f"{kind.version}")
    try:
        for key, parse in kind.configs.items():
            state[key] = parse(state[key])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: unusable stored config: {exc}") from None
    return state


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a stream checkpoint (read_checkpoint)."""
    return read_checkpoint(path, STREAM_CHECKPOINT_FORMAT)


def check_compatible(path: str | Path, state: dict[str, Any], stream: str | None, class_names: tuple[str, ...]) -> None:
    """Refuse a checkpoint of another stream, or trained on other classes than `class_names`."""
    if stream is not None and state["stream"] != stream:
        raise CheckpointError(f"{path} is a {state['stream']} stream checkpoint, not {stream}")
    if state["num_classes"] != len(class_names):
        raise CheckpointError(f"{path} was trained on {state['num_classes']} classes, but the shards have "
                              f"{len(class_names)}")
    stored = tuple(state["class_names"])
    if stored != class_names:
        k = next(i for i, (a, b) in enumerate(zip(stored, class_names)) if a != b)
        raise CheckpointError(f"{path} was trained on other classes: class {k} is {stored[k]!r} there, "
                              f"{class_names[k]!r} in the shards")


def load_weights(model: nn.Module, weights: Any, path: str | Path, what: str = "model") -> None:
    """Load a checkpoint's state dict `weights` into `model` (built from the checkpoint's config),
    after checking every tensor's name and shape against it: weights of another backbone, or a
    classifier of another class count, are a CheckpointError in one line naming the first
    difference, not a RuntimeError listing hundreds of them."""
    if not isinstance(weights, Mapping) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{path}: its {what} weights are not a state dict of tensors")
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    wrong = [(k, tuple(weights[k].shape), tuple(v.shape)) for k, v in expected.items()
             if k in weights and weights[k].shape != v.shape]
    if missing or unexpected or wrong:
        found = []
        if wrong:
            name, there, here = wrong[0]
            found.append(f"{len(wrong)} of another shape ({name!r} is {list(there)}, the config's model has "
                         f"{list(here)})")
        if missing:
            found.append(f"{len(missing)} missing ({missing[0]!r}...)")
        if unexpected:
            found.append(f"{len(unexpected)} unexpected ({str(unexpected[0])[:80]!r}...)")
        raise CheckpointError(f"{path}: its {what} weights do not fit the network its stored config describes: "
                              f"tensors {', '.join(found)}; the checkpoint is damaged or was edited")
    model.load_state_dict(weights)


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: Any, path: str | Path) -> None:
    """Load a checkpoint's optimizer state after checking it against `optimizer` (built for the
    model its config describes): torch loads a momentum buffer of another shape without a word,
    and the first step of the resumed run died with a RuntimeError traceback. Every per-parameter
    tensor (momentum, Adam's moments) must have its parameter's shape; a 0-d tensor (a step count)
    is a number."""
    if not isinstance(saved, Mapping) or not isinstance(saved.get("state"), Mapping) \
            or not isinstance(saved.get("param_groups"), list):
        raise CheckpointError(f"{path}: its optimizer state is not an optimizer's state dict")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    saved_ids = [i for group in saved["param_groups"] if isinstance(group, Mapping)
                 for i in group.get("params", [])]
    if len(saved_ids) != len(params) or len(saved["param_groups"]) != len(optimizer.param_groups):
        raise CheckpointError(f"{path}: its optimizer state is for {len(saved_ids)} parameter(s) in "
                              f"{len(saved['param_groups'])} group(s), the config's model has {len(params)} in "
                              f"{len(optimizer.param_groups)}; the checkpoint is damaged or was edited")
    for index, param in zip(saved_ids, params):
        for name, value in (saved["state"].get(index) or {}).items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                raise CheckpointError(f"{path}: its optimizer's {name!r} of parameter {index} is "
                                      f"{list(value.shape)}, the parameter is {list(param.shape)}; the checkpoint "
                                      f"is damaged or was edited")
    try:
        optimizer.load_state_dict(saved)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: its optimizer state does not load: {exc}") from None

