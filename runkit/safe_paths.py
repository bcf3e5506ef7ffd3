"""Text read from files as it may be shown, and the paths a command may write: the one rule for each.

A folder a command reads is input, not a trusted file: it may come from another lab, a download,
a tarball. Every name read from one reaches a terminal or a log only through `shown` or `escaped`
(control characters escaped, never raw; the rules for the names an extraction folder holds are
flowprep.format.names'), and every path that `export-rawframes` or `import-rawframes` writes or
deletes is checked to lie inside its --out, after symlinks, before anything is touched; a
command's --out may not overlap its input (`overlap_problem`).
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

# C0 and C1 controls and DEL (ESC sequences, newlines: forged log lines, terminal control), the
# Unicode line and paragraph separators, and the bidirectional overrides (text shown reordered)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class UnsafePathError(ValueError):
    """A path that would leave the folder it must stay in; str() names both."""


def shown(name: object) -> str:
    """`name` as it may be printed: quoted, control characters escaped (repr)."""
    text = repr(name)
    return text if len(text) <= 80 else text[:60] + "..." + text[-10:]


def escaped(text: str) -> str:
    """`text` with every control character written as its escape (ESC as \\x1b): safe to print."""
    return CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def has_control(text: str) -> bool:
    return CONTROL.search(text) is not None


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
