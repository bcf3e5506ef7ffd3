"""Running the `flowprep` and `twostream` commands in tests, one helper for each way:

- in this process, `flowprep(capsys, *args)` and `twostream(capsys, *args)`: fast, and capsys sees
  the output; the way to use unless the test needs a real process;
- as a process, `run([*FLOWPREP, *args])` (or TWOSTREAM; Popen with the same lists where the test
  kills it): where a process must exit, be killed, crash, run under a resource limit or under
  torchrun. `python -m` with this tree first on PYTHONPATH, so the code under test runs whether or
  not it is installed.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

PYTHON = sys.executable
FLOWPREP = [PYTHON, "-m", "flowprep"]
TWOSTREAM = [PYTHON, "-m", "twostream"]


def _in_process(main, capsys, args) -> tuple[int, str, str]:
    capsys.readouterr()  # what an earlier step printed is not this command's
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def flowprep(capsys, *args) -> tuple[int, str, str]:
    """`flowprep ARGS` in this process: (exit status, stdout, stderr)."""
    from flowprep.cli.main import main

    return _in_process(main, capsys, args)


def twostream(capsys, *args) -> tuple[int, str, str]:
    """`twostream ARGS` in this process: (exit status, stdout, stderr)."""
    from twostream.cli.main import main

    return _in_process(main, capsys, args)


def one_line_error(capsys, *args) -> str:
    """The message of a `twostream` command that must fail as a usage error (status 2, no traceback)."""
    code, _, err = twostream(capsys, *args)
    assert code == 2 and "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def environment(env: dict | None = None) -> dict:
    """This process's environment with this tree first on PYTHONPATH, and `env` over it."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **(env or {})}


def run(cmd: list, env: dict | None = None, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """`cmd` as a process to its end, its output captured as text."""
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          env=environment(env), **kwargs)
