"""An extraction folder's config.json: which kind of run made the folder and with what settings,
as stored (`FolderConfig`, its one writer and parser), the types of the settings every reader
relies on, and whether a shard was made with the folder's config. The folder's store
(flowprep.format.folder) reads and writes the file through this module.

    OUT/config.json   {"format_version": 1, "extract": {...}}: the ExtractConfig it was made with,
                      or {"format_version": 1, "import": {...}}: the ImportConfig of an import
                      (its own version, CONFIG_FORMAT_VERSION)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import h5py

from flowprep.format.shards import ATTR_EXTRACT_CONFIG, ShardFormatError
from runkit.files import parse_json
from runkit.safe_paths import shown

# Each file of the folder has its own format version, checked where it is read. Both were the
# shards' version (1) until they were split out, so every folder written before reads as is.
CONFIG_FORMAT_VERSION = 1
EXTRACTION_CONFIG_FILE = "config.json"

# The two kinds of run that make an extraction folder: config.json's key, and how messages name them.
RUN_KINDS = {
    "extract": "an extraction made by `flowprep extract`",
    "import": "frames imported from a rawframes tree (flowprep import-rawframes)",
}


class RunSettings(Protocol):
    """What a run stores in config.json (ExtractConfig, ImportConfig): its owner writes it as a
    dict and parses it back, filling settings added since with their defaults."""

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSettings": ...


class ConfigVersionError(ValueError):
    """config.json of another format version than CONFIG_FORMAT_VERSION."""

    def __init__(self, version: Any) -> None:
        super().__init__(f"format version {version!r}")
        self.version = version


@dataclass(frozen=True)
class FolderConfig:
    """What config.json says: which kind of run made the folder, and that run's settings as stored
    (ExtractConfig.to_dict() or ImportConfig.to_dict(); the modules that own those classes parse them)."""

    kind: str  # one of RUN_KINDS
    settings: dict[str, Any]

    def to_json(self) -> str:
        """The settings as one line of JSON, as every shard of the folder stores them."""
        return json.dumps(self.settings, sort_keys=True)

    def stored(self) -> dict[str, Any]:
        """config.json's content: `{"format_version": ..., kind: settings}` (the one place it is built)."""
        return {"format_version": CONFIG_FORMAT_VERSION, self.kind: self.settings}

    @classmethod
    def parse(cls, data: Any) -> "FolderConfig":
        """config.json's content read back (the one place it is parsed): ConfigVersionError for
        another format version, ValueError saying why for anything else it cannot be."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        version = data.get("format_version")
        if version != CONFIG_FORMAT_VERSION:
            raise ConfigVersionError(version)
        kinds = [k for k in RUN_KINDS if k in data]
        if len(kinds) != 1 or not isinstance(data[kinds[0]], dict):
            raise ValueError(f"expected one of the keys {', '.join(repr(k) for k in RUN_KINDS)} holding the settings")
        problem = settings_type_problem(kinds[0], data[kinds[0]])
        if problem:  # a width of "112" is refused here, not a TypeError in a reader
            raise ValueError(problem)
        return cls(kinds[0], data[kinds[0]])

    @property
    def fixed_min_side(self) -> int | None:
        """The shorter side of every stored frame, where the config fixes it (an extraction: a
        fixed size or a short side); None where frames keep their source's size (an import).

        The one reading of an extraction's keys left in this module, and why: the trainer needs
        it before it opens a shard, and twostream reads flowprep through flowprep.format only
        (tests/test_layout.py), so it cannot ask flowprep.extract.config; without this it would
        read the size of every video of every shard."""
        s = self.settings
        if self.kind != "extract":
            return None
        return s["short_side"] if s.get("short_side") is not None else min(s["width"], s["height"])


def config_text(config: FolderConfig) -> str:
    """config.json's text, as every run writes it."""
    return json.dumps(config.stored(), indent=1)


def _positive_number(v: Any) -> bool:
    return type(v) in (int, float) and v > 0


# The types of the settings this layer reads (fixed_min_side) or compares: each kind's key ->
# (check, what is accepted). flowprep.extract.config parses the whole config (verify, export and a
# resumed run do); this is the guard every reader has, the trainer included, which cannot reach
# flowprep.extract: a config.json from elsewhere with a width of "112" is one line where it is read.
_OPTIONAL_SIDE = (lambda v: v is None or (type(v) is int and v > 0), "a positive integer or null")
SETTINGS_TYPES: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "extract": {"width": _OPTIONAL_SIDE, "height": _OPTIONAL_SIDE, "short_side": _OPTIONAL_SIDE,
                "bound": (_positive_number, "a positive number"),
                "mean_subtraction": (lambda v: type(v) is bool, "true or false"),
                "flow_method": (lambda v: type(v) is str, "a string"),
                "flow_params": (lambda v: isinstance(v, dict), "an object"),
                "rgb_codec": (lambda v: type(v) is str, "a string"), "flow_codec": (lambda v: type(v) is str, "a string")},
    "import": {"bound": (_positive_number, "a positive number"),
               "mean_subtracted": (lambda v: type(v) is bool, "true or false"),
               "rgb_codec": (lambda v: type(v) is str, "a string"), "flow_codec": (lambda v: type(v) is str, "a string")},
}


def settings_type_problem(kind: str, settings: dict[str, Any]) -> str | None:
    """Why stored settings of `kind` cannot be read, or None: each setting this layer reads has its type."""
    for key, (ok, accepted) in SETTINGS_TYPES[kind].items():
        if key in settings and not ok(settings[key]):
            return f"{key} is {shown(settings[key])}, expected {accepted}"
    if kind == "extract" and settings.get("short_side") is None and (settings.get("width") is None
                                                                     or settings.get("height") is None):
        return "expected width and height, or short_side"
    return None


def settings_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`key: old -> new` for every setting that differs (`key.sub` inside nested dicts)."""
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            lines += [f"{key}.{line}" for line in settings_differences(a, b)]
        else:
            lines.append(f"{key}: {a!r} -> {b!r}")
    return lines


def same_settings(shard: Any, folder: Any) -> bool:
    """Whether settings a shard stores are the folder's: every key the shard has is the folder's,
    with the same value (nested dicts likewise). A key only the folder has is a setting added to
    flowprep since the shard was written (config.json is rewritten by each run, shards are not);
    the parsing modules (flowprep.extract.config) know its default, this layer does not."""
    if isinstance(shard, dict) and isinstance(folder, dict):
        return all(k in folder and same_settings(v, folder[k]) for k, v in shard.items())
    return shard == folder


def shard_config_problem(f: h5py.File, config: FolderConfig) -> str | None:
    """Why an open shard is not one of the folder whose config is `config`, or None: the
    extraction config it stores must be the folder's (`same_settings`), of the same kind of run."""
    text = f.attrs.get(ATTR_EXTRACT_CONFIG)
    try:
        stored = parse_json(text.decode() if isinstance(text, bytes) else text)
    except (ValueError, TypeError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else " ".join(str(exc).split())[:160]
        return f"its stored extraction config does not parse ({why})"
    if not isinstance(stored, dict):
        return "its stored extraction config is not a JSON object"
    kind = "import" if stored.get("origin") == "rawframes" else "extract"
    marker = "origin" if kind == "import" else "flow_method"
    if kind != config.kind or marker not in stored:
        return (f"holds {RUN_KINDS[kind]}, but the folder's {EXTRACTION_CONFIG_FILE} {RUN_KINDS[config.kind]}: a shard "
                "of another folder")
    if same_settings(stored, config.settings):
        return None
    diff = "; ".join(settings_differences(config.settings, {**config.settings, **stored})[:4])
    extra = [k for k in stored if k not in config.settings]
    diff = diff or f"settings unknown to the folder: {', '.join(extra[:4])}"
    return (f"was made with another config than the folder's {EXTRACTION_CONFIG_FILE} ({diff}): a shard of another "
            "extraction")


def check_shard_config(f: h5py.File, path: Path, config: FolderConfig) -> None:
    """ShardFormatError, one line naming the shard, unless it was made with the folder's config."""
    problem = shard_config_problem(f, config)
    if problem:
        raise ShardFormatError(f"{path} {problem}; move it out of the folder (or re-extract it there)")
