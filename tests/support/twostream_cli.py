"""Running the `twostream` CLI inside the test process, as a user would call it."""
from __future__ import annotations

import pytest

from twostream.cli.main import main


def twostream(capsys, *args: str) -> tuple[int, str, str]:
    """`twostream ARGS`: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def one_line_error(capsys, *args: str) -> str:
    """The message of a command that must fail as a usage error (status 2, no traceback)."""
    code, _, err = twostream(capsys, *args)
    assert code == 2 and "Traceback" not in err, err
    return err.strip().splitlines()[-1]
