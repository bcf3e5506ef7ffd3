"""Running the `twostream` CLI inside the test process, as a user would call it.

Note (issue 20, left as it is): the tests start the two CLIs three ways. In this process through
`main(args)` (here, tests/support/extraction.run_cli, test_cli_vocabulary): fast, and capsys sees
the output. As `python -m flowprep|twostream` in a subprocess (test_extract, test_resume,
test_demo_data, test_train_fit, the reliability scenarios): where a real process must exit, be
killed or crash. Through the installed entry point beside sys.executable (test_distributed,
test_many_shards): torchrun runs a script. One helper per way, naming when to use which, would
make the choice visible; not done in this pass.
"""
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
