"""The fusion heads' names, default sizes and frozen spec (twostream.feature_fusion.model builds
them). Torch-free, so that the command line's help and config checks import no torch."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

HEADS = ("mid", "attention")
# hidden units of the head when not given: mid fusion is a linear layer on the concatenated
# features (the features are already the streams' last representation); attention's weight
# network needs a hidden layer to make its weights depend on the sample non-linearly.
DEFAULT_HIDDEN = {"mid": 0, "attention": 128}


@dataclass(frozen=True)
class HeadSpec:
    method: str
    hidden: int  # units of the hidden layer; 0: none
    dropout: float  # on the concatenated features (and on the hidden layer)

    def __post_init__(self) -> None:
        if self.method not in HEADS:
            raise ValueError(f"fusion method must be one of {', '.join(HEADS)}; got {self.method!r}")
        if not (isinstance(self.hidden, int) and self.hidden >= 0) or (self.method == "attention" and self.hidden == 0):
            accepted = "a positive integer" if self.method == "attention" else "a non-negative integer (0: linear)"
            raise ValueError(f"hidden units of the {self.method} head must be {accepted}, got {self.hidden!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"head dropout must be in [0, 1), got {self.dropout!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HeadSpec:
        return cls(**json.loads(text))
