"""The files both packages write and read, and the one rule for each: written whole (a temporary
file and a rename, so a kill leaves the old file or the new), never through a link, never over
anything but a regular file, and read only from a regular file (a FIFO never hangs a reader).

Why: a folder the tool writes into may come from elsewhere (a copy, a tarball, another user's
scratch space), so a name inside it may be a planted symbolic link to a file outside
(`index.json.tmp -> ~/.bashrc`), a FIFO, or a device node. Every file created, replaced or deleted
here is first looked at with lstat (never followed) and opened with O_NOFOLLOW, so the check and
the open agree even if the name changes between them; a reader opens with O_NONBLOCK and looks at
what it opened before reading a byte.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from runkit.faults import fault_point


class NotRegularFileError(ValueError):
    """A name inside a folder the tool writes (or a file it reads) that is not a regular file: a
    symbolic link, a FIFO, a device, a folder where a file belongs (or a link where a folder
    belongs). str() names it, what it is, and what to do."""


def kind_of(mode: int) -> str:
    """What a file of `mode` (from stat or lstat) is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def _lstat_mode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None


def _refusal(path: Path, mode: int, wanted: str = "a regular file") -> NotRegularFileError:
    what = kind_of(mode)
    if stat.S_ISLNK(mode):
        try:
            what += f" (to {os.readlink(path)!r})"
        except OSError:
            pass
    return NotRegularFileError(f"{path} is {what}, not {wanted}; nothing was written there (files inside a "
                               f"folder this tool writes are never followed through links): remove it, or choose "
                               f"another --out")


def check_replaceable(path: Path) -> None:
    """NotRegularFileError unless `path` is absent or a regular file (never followed): called
    before a file is created, replaced or deleted."""
    mode = _lstat_mode(path)
    if mode is not None and not stat.S_ISREG(mode):
        raise _refusal(Path(path), mode)


def _open_flags(base: int) -> int:
    # O_NONBLOCK: opening a FIFO for writing fails at once (ENXIO) instead of waiting for a reader
    return base | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _checked_fd(path: Path, flags: int, mode: int = 0o644) -> int:
    """`path` opened with `flags` (never through a link, never blocking), checked to be a regular
    file, its descriptor back in blocking mode."""
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise _refusal(Path(path), _lstat_mode(path) or stat.S_IFLNK) from None
        raise
    found = os.fstat(fd).st_mode
    if not stat.S_ISREG(found):
        os.close(fd)
        raise _refusal(Path(path), found)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def open_for_writing(path: Path, binary: bool = True, append: bool = False, **text_options: Any) -> IO:
    """`path` opened to be written (created, or truncated unless `append`), only if it is absent
    or a regular file, never through a link."""
    check_replaceable(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = _checked_fd(Path(path), _open_flags(flags))
    return os.fdopen(fd, "ab" if append else "wb") if binary else os.fdopen(
        fd, "a" if append else "w", **{"encoding": "utf-8", **text_options})


def open_lock_file(path: Path) -> int:
    """A descriptor of the lock file `path` (created if absent) to flock: only a regular file,
    never through a link (a dangling link would create its target outside the folder)."""
    check_replaceable(path)
    return _checked_fd(Path(path), _open_flags(os.O_RDWR | os.O_CREAT))


def open_regular(path: Path, binary: bool = True, **text_options: Any) -> IO:
    """`path` opened for reading, only if it is a regular file (links to one are followed: a
    reader may be pointed at a file elsewhere); a FIFO or a device is refused, never waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise NotRegularFileError(f"{path} is a folder, not a regular file") from None
        raise
    found = os.fstat(fd).st_mode
    if not stat.S_ISREG(found):
        os.close(fd)
        raise NotRegularFileError(f"{path} is {kind_of(found)}, not a regular file; it was not read")
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return os.fdopen(fd, "rb") if binary else os.fdopen(fd, "r", **{"encoding": "utf-8", **text_options})


def read_regular_bytes(path: Path) -> bytes:
    with open_regular(path) as fh:
        return fh.read()


def read_regular_text(path: Path, encoding: str = "utf-8") -> str:
    return read_regular_bytes(path).decode(encoding)


def remove_file(path: Path) -> None:
    """Delete `path` if it is there: a regular file, or a link itself (never what it points to)."""
    mode = _lstat_mode(path)
    if mode is None:
        return
    if stat.S_ISDIR(mode):
        raise _refusal(Path(path), mode)
    os.unlink(path)


def real_folder(path: Path, create: bool = True) -> Path:
    """`path` as a real folder (created if absent and `create`): NotRegularFileError if it is a
    link (to a folder elsewhere, whose files the tool would then delete) or not a folder."""
    mode = _lstat_mode(path)
    if mode is None:
        if create:
            os.makedirs(path, exist_ok=True)
            return real_folder(path, create=False)
        return Path(path)
    if not stat.S_ISDIR(mode):
        raise _refusal(Path(path), mode, "a folder")
    return Path(path)


def is_real_folder(path: Path) -> bool:
    """Whether `path` is a folder itself, not a link to one."""
    mode = _lstat_mode(path)
    return mode is not None and stat.S_ISDIR(mode)


@contextmanager
def replacing(path: Path, binary: bool = True, **text_options: Any) -> Iterator[IO]:
    """A file to write `path`'s new content into; on leaving the block it replaces `path` in one
    rename (a kill leaves the old file or the new; an error leaves the old and no temporary)."""
    path = Path(path)
    check_replaceable(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open_for_writing(tmp, binary, **text_options) as fh:
            yield fh
    except BaseException:
        mode = _lstat_mode(tmp)
        if mode is not None and stat.S_ISREG(mode):
            tmp.unlink()  # a full disk, or an error: leave no half-written file behind
        raise
    fault_point(f"write:{path.name}")
    os.replace(tmp, path)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: a kill leaves the old file or the new."""
    with replacing(path) as fh:
        fh.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: a kill leaves the old file or the new."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def write_with(path: Path, write: Callable[[IO], Any]) -> None:
    """`write(file)` into a temporary file that then replaces `path` (torch.save, np.savez, a
    figure's savefig: libraries that would otherwise open the path themselves, through links)."""
    with replacing(path) as fh:
        write(fh)


def parse_json(text: str | bytes, kind: type | None = None) -> Any:
    """The JSON document in `text` (of type `kind`, e.g. dict, where given): the one JSON reader
    of both packages (tests/test_layout.py holds every other module to it). ValueError, one line,
    if it is not JSON, nested too deeply (json's parser recurses once per level: a hostile file
    nests 100,000 deep) or of another type."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if kind is not None and not isinstance(data, kind):
        raise ValueError(f"expected a JSON {_JSON_NAMES.get(kind, kind.__name__)}, got {_json_name(data)}")
    return data


_JSON_NAMES = {dict: "object", list: "array", str: "string", float: "number", int: "integer", bool: "true/false"}


def _json_name(value: Any) -> str:
    return "null" if value is None else _JSON_NAMES.get(type(value), type(value).__name__)


def read_json_file(path: Path, error: type[Exception], missing: str, what: str) -> Any:
    """The JSON document in `path`, or `error` with a one-line message naming the file: `missing`
    when there is no such file, "unreadable <what>: ..." when it cannot be read or parsed (not a
    regular file, not UTF-8, not JSON, nested too deeply)."""
    try:
        return parse_json(read_regular_text(path))
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except NotRegularFileError as exc:
        raise error(f"{path}: unreadable {what}: {str(exc).removeprefix(str(path) + ' ')}") from None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: unreadable {what}: {exc}") from None
