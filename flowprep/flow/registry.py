"""The one registry of flow backends: a backend is a module of this folder that declares a
`FlowMethod` (backend.py), and one line here."""
from __future__ import annotations

from typing import Any, Mapping

from flowprep.flow.backend import FlowFn, FlowMethod
from flowprep.flow.dis import DIS
from flowprep.flow.farneback import FARNEBACK
from flowprep.flow.tvl1.methods import TVL1, TVL1_TORCH

FLOW_METHODS: dict[str, FlowMethod] = {m.name: m for m in (
    TVL1,
    TVL1_TORCH,
    FARNEBACK,
    DIS,
)}


def get_method(name: str) -> FlowMethod:
    try:
        return FLOW_METHODS[name]
    except KeyError:
        raise ValueError(f"unknown flow method {name!r}; choose one of: {', '.join(FLOW_METHODS)}") from None


def make_flow(name: str, params: Mapping[str, Any] | None = None) -> FlowFn:
    """Build the flow function of backend `name` with `params` over its defaults."""
    return get_method(name).create(params)
