"""The fusion heads' registry: one entry per head (its name, its default hidden size, what it reads
and how it is built), and their frozen spec. Torch-free, so that the command line's help and
config checks import no torch: each builder imports the head's network (twostream.feature_fusion.
head_networks) only when a model is built. A new head is one `Head` entry here and its nn.Module there."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

from runkit.files import parse_json
from twostream.core.config import renamed, stored


@dataclass(frozen=True)
class Head:
    name: str
    # hidden units of the head when not given
    default_hidden: int
    # 0 allowed (a linear head) or a hidden layer required
    needs_hidden: bool
    # the head reads each stream's logits (its own classifier's) beside their features; a head
    # that does not leaves the stream classifiers unused (DDP must be told when they fine-tune)
    uses_logits: bool
    # (spec, (spatial features, temporal features), classes) -> nn.Module
    build: Callable
    description: str
    # the head reads the streams' last feature maps and the flow input (map_heads.StreamMaps), not
    # their pooled features; `build` then gets the maps' channels
    uses_maps: bool = False
    # (spec) -> the name reports give a run of it, where its variants differ (default: the head's name)
    label: Callable | None = None


def _build_mid(spec: HeadSpec, dims: tuple[int, int], num_classes: int):
    from twostream.feature_fusion.head_networks import MidHead
    return MidHead(dims, num_classes, spec.hidden, spec.dropout)


def _build_attention(spec: HeadSpec, dims: tuple[int, int], num_classes: int):
    from twostream.feature_fusion.head_networks import AttentionHead
    return AttentionHead(dims, spec.hidden, spec.dropout)


def _build_motion(spec: HeadSpec, channels: tuple[int, int], num_classes: int):
    from twostream.feature_fusion.map_heads import MotionHead
    return MotionHead(channels, num_classes, spec.hidden, spec.dropout)


def _build_cross_attention(spec: HeadSpec, channels: tuple[int, int], num_classes: int):
    from twostream.feature_fusion.map_heads import CrossAttentionHead
    return CrossAttentionHead(channels, num_classes, spec.hidden, spec.dropout)


# mid fusion is a linear layer on the concatenated features (the features are already the
# streams' last representation); attention's weight network needs a hidden layer to make its
# weights depend on the sample non-linearly.
REGISTRY: dict[str, Head] = {h.name: h for h in (
    Head("mid", default_hidden=0, needs_hidden=False, uses_logits=False, build=_build_mid,
         description="concatenated features -> linear/MLP head"),
    Head("attention", default_hidden=128, needs_hidden=True, uses_logits=True, build=_build_attention,
         description="per-sample weights of the streams' logits"),
    Head("motion", default_hidden=0, needs_hidden=False, uses_logits=False, build=_build_motion, uses_maps=True,
         description="the spatial feature map pooled where the motion is (--hidden 0: weights from the flow's "
                     "magnitude; N: learned from the temporal feature map)",
         label=lambda spec: "motion-learned" if spec.hidden else "motion"),
    Head("cross-attention", default_hidden=128, needs_hidden=True, uses_logits=False, build=_build_cross_attention,
         uses_maps=True, description="the feature maps' positions as tokens, each stream's attending to the other's"),
)}
HEADS = tuple(REGISTRY)
DEFAULT_HIDDEN = {name: h.default_hidden for name, h in REGISTRY.items()}


@dataclass(frozen=True)
class HeadSpec:
    head: str  # its name in the registry (fuse-features train --method)
    hidden: int  # units of the hidden layer; 0: none
    dropout: float  # on the concatenated features (and on the hidden layer)

    def __post_init__(self) -> None:
        if self.head not in REGISTRY:
            raise ValueError(f"fusion method must be one of {', '.join(HEADS)}; got {self.head!r}")
        needs_hidden = REGISTRY[self.head].needs_hidden
        if not (isinstance(self.hidden, int) and self.hidden >= 0) or (needs_hidden and self.hidden == 0):
            accepted = "a positive integer" if needs_hidden else "a non-negative integer (0: linear)"
            raise ValueError(f"hidden units of the {self.head} head must be {accepted}, got {self.hidden!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"head dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def entry(self) -> Head:
        return REGISTRY[self.head]

    @property
    def name(self) -> str:
        """The head as reports name it (motion or motion-learned, ...)."""
        return self.entry.label(self) if self.entry.label else self.head

    def to_json(self) -> str:
        return json.dumps(stored(asdict(self)), sort_keys=True)  # its "method" as checkpoints store it

    @classmethod
    def from_json(cls, text: str) -> HeadSpec:
        return cls(**renamed(parse_json(text, dict)))  # an older checkpoint's "method" is the head
