"""Names that come from files, and the paths they become: the one rule for each.

A folder of shards is input, not a trusted file: it may come from another lab, a download, a
tarball. Every name read from one (a video id in index.json or a shard, a shard name, a label
name) is checked here before it becomes a path or reaches a terminal or a log, and every path
that `export-rawframes` or `import-rawframes` writes or deletes is checked to lie inside its
--out, after symlinks, before anything is touched. Refusals are one line that shows the bad
name with `shown` (control characters escaped), never raw.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from flowprep.format.files import kind_of

MAX_ID_LENGTH = 200
MAX_LABEL_NAME_LENGTH = 200
# C0 and C1 controls and DEL (ESC sequences, newlines: forged log lines, terminal control), the
# Unicode line and paragraph separators, and the bidirectional overrides (text shown reordered)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
ID_RULE = (f"a video id is 1-{MAX_ID_LENGTH} characters, not '.' or '..', with no '/', '\\' "
           "or control characters")
SHARD_NAME_RULE = "a shard is named by a plain file name inside the folder (no '/', '\\', '..', not absolute)"


class UnsafePathError(ValueError):
    """A path that would leave the folder it must stay in; str() names both."""


def shown(name: object) -> str:
    """`name` as it may be printed: quoted, control characters escaped (repr)."""
    text = repr(name)
    return text if len(text) <= 80 else text[:60] + "..." + text[-10:]


def escaped(text: str) -> str:
    """`text` with every control character written as its escape (ESC as \\x1b): safe to print."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


_NOT_IN_ID = re.compile(r"[/\\" + _CONTROL.pattern[1:])


def check_video_id(video_id: object) -> str | None:
    """Why `video_id` cannot name a video (a shard's group, a frame folder, a log line), or None:
    the rule manifests, index.json and shards all follow."""
    if (type(video_id) is str and 0 < len(video_id) <= MAX_ID_LENGTH and video_id not in (".", "..")
            and _NOT_IN_ID.search(video_id) is None):
        return None  # the common case in one regex: index.json of Kinetics holds 240,000 ids
    if not isinstance(video_id, str):
        return f"video_id {shown(video_id)} is not a string"
    if not video_id:
        return "video_id is empty"
    if video_id in (".", "..") or any(c in video_id for c in "/\\"):
        return f"video_id {shown(video_id)} may not be '.' or '..' or contain '/' or '\\' ({ID_RULE})"
    if has_control(video_id):
        return f"video_id {shown(video_id)} contains control characters ({ID_RULE})"
    if len(video_id) > MAX_ID_LENGTH:
        return f"video_id {shown(video_id)} is longer than {MAX_ID_LENGTH} characters"
    return None


def check_label_name(name: object) -> str | None:
    """Why a class name cannot be shown in logs and reports, or None."""
    if not isinstance(name, str):
        return f"label_name {shown(name)} is not a string"
    if has_control(name):
        return f"label_name {shown(name)} contains control characters"
    if len(name) > MAX_LABEL_NAME_LENGTH:
        return f"label_name {shown(name)} is longer than {MAX_LABEL_NAME_LENGTH} characters"
    return None


def check_shard_name(name: object) -> str | None:
    """Why `name` cannot name a shard file of a folder (as its own index.json names it), or None."""
    if not isinstance(name, str) or not name:
        return f"shard name {shown(name)} is not a file name ({SHARD_NAME_RULE})"
    if (name in (".", "..") or any(c in name for c in "/\\") or os.path.isabs(name) or has_control(name)
            or len(name) > 255):
        return f"shard name {shown(name)} is not a plain file name ({SHARD_NAME_RULE})"
    return None


def regular_file_problem(path: Path) -> str | None:
    """Why `path` cannot be opened as a shard without risk, or None: only a regular file (or a
    symlink to one) is opened, so a FIFO cannot hang a reader and a device or folder is refused."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None  # the opener says "not found" in its own words
    except OSError as exc:
        return f"cannot be examined: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    return f"is {kind_of(mode)}, not a regular file; a shard is a regular HDF5 file"


def inside(root: Path, path: Path) -> bool:
    """Whether `path` lies inside `root` (or is it), both resolved through every symlink."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except ValueError:
        return False


def check_inside(root: Path, *paths: Path, error: type[Exception] = UnsafePathError) -> None:
    """`error`, one line, unless every one of `paths` lies inside `root` after symlinks: called
    before a path is written or deleted."""
    for path in paths:
        if not inside(root, path):
            raise error(f"{shown(str(path))} resolves to {shown(str(Path(path).resolve()))}, outside "
                                  f"{root}; nothing was written: the paths a command writes stay inside its --out")


def overlap_problem(out: Path, given: Path, what: str) -> str | None:
    """Why a command may not write into `out` beside its input folder `given` (`what` names it,
    e.g. "the extraction"), or None: `out` is that folder, lies inside it, or contains it (after
    symlinks), so the command's files (config.json, a checkpoint) would replace or mix with the
    input's own (an extraction's config.json overwritten by a training run's)."""
    real_out, real_given = Path(out).resolve(), Path(given).resolve()
    if real_out == real_given:
        how = "is"
    elif real_given in real_out.parents:
        how = "lies inside"
    elif real_out in real_given.parents:
        how = "contains"
    else:
        return None
    return (f"--out {shown(str(out))} {how} {what} {shown(str(given))}: its files would be overwritten or "
            f"mixed with this command's; choose an --out outside it")


def outside_root(root: Path, path: Path) -> Path | None:
    """Where `path` (under `root`, maybe through symlinks) really is, if that is outside `root`; else None."""
    real = Path(path).resolve()
    try:
        real.relative_to(Path(root).resolve())
        return None
    except ValueError:
        return real


class RootGuard:
    """Which files named under a root really lie outside it (a symlink to elsewhere, or a folder
    on the way that is one), at one lstat a file: each folder is resolved once, a file only
    when it is itself a symlink. So a manifest of 200,000 videos is checked in about a second."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self._folders: dict[str, str] = {}

    def outside(self, path: Path) -> str | None:
        """The real path of `path` if it lies outside the root, else None."""
        folder, name = os.path.split(os.fspath(path))
        real_folder = self._folders.get(folder)
        if real_folder is None:
            real_folder = self._folders[folder] = os.path.realpath(folder)
        try:
            link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            link = False  # a missing file: the job reports it as missing
        real = os.path.realpath(path) if link else os.path.join(real_folder, name)
        return None if real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep) else real
