"""The commands' entry points, before anything heavy is imported: OpenCV, torch and numpy map
large shared libraries when imported, and under a low address-space limit (`ulimit -v`, a
cluster's memory cap) that fails with an ImportError or MemoryError traceback from deep inside a
library. Here it is one line naming the cause. (Only the standard library is imported here.)

Each tool names its own command module: `main()` of flowprep/__main__.py and twostream/__main__.py,
the console scripts' entry points (setup.cfg), call `launch` with it."""
from __future__ import annotations

import importlib
import sys


def launch(module: str, prog: str) -> None:
    """Import `module` and run its `main()`; a failure to load a library is one line, status 1."""
    try:
        entry = importlib.import_module(module).main
    except (ImportError, MemoryError) as exc:
        if not _low_memory_limit() and not isinstance(exc, MemoryError):
            raise  # a broken installation, not the limit: its traceback says which package
        why = " ".join(str(exc).split())[:200] or type(exc).__name__
        print(f"{prog}: error: cannot load its libraries ({why}); the address-space limit (ulimit -v) of "
              f"{_low_memory_limit() or 'this process'} is too low for OpenCV and torch: raise it", file=sys.stderr)
        sys.exit(1)
    entry()


def _low_memory_limit() -> str | None:
    """The address-space limit in words, if one is set."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else f"{soft / 2**20:,.0f} MiB"

