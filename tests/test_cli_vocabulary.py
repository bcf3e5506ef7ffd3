"""One vocabulary across `flowprep` and `twostream` (docs/cli.md): every option used by two or more
commands is in the docs' table and means one thing; the names that used to mean two things are
gone; evaluate finds the extraction in the run; and --help imports no torch."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import click
import pytest

from flowprep.cli.main import cli as flowprep_cli
from flowprep.cli.main import main as flowprep_main
from twostream.cli.main import cli as twostream_cli
from twostream.cli.main import main as twostream_main

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "cli.md"


def commands() -> dict[str, click.Command]:
    """'flowprep extract', 'twostream fuse-features train', ...: every leaf command."""
    found = {}

    def walk(command: click.Command, path: str) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")
        else:
            found[path] = command
    walk(flowprep_cli, "flowprep")
    walk(twostream_cli, "twostream")
    return found


def options_of(command: click.Command) -> dict[str, click.Option]:
    return {name: p for p in command.params if isinstance(p, click.Option) for name in p.opts}


def run(main, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    return info.value.code


def test_every_shared_option_is_in_the_docs_table():
    uses = defaultdict(list)
    for path, command in commands().items():
        for name in options_of(command):
            uses[name].append(path)
    documented = set(re.findall(r"`(--[a-z0-9-]+)", DOCS.read_text().split("## The shared options")[1]
                                .split("## Renamed options")[0]))
    shared = {name for name, paths in uses.items() if len(paths) > 1 and name not in ("-h", "--help")}
    assert shared - documented == set(), "shared options missing from docs/cli.md's table"


def test_shared_names_keep_one_meaning():
    for path, command in commands().items():
        options = options_of(command)
        if "--workers" in options:  # processes, 0 = all cores, everywhere
            assert path.startswith("flowprep") and "0 = all cores" in options["--workers"].help, path
        if "--device" in options:
            assert options["--device"].default == "auto", path
        if "--out" in options and not (path.startswith("flowprep manifest") or path.endswith(" show")):
            kind = options["--out"].type
            assert isinstance(kind, click.Path) and not kind.file_okay, f"{path}: --out is not a folder"
        assert "--part" not in options or path == "flowprep extract", path  # extract's cluster part only
        assert "--weights" not in options or path == "twostream train", path  # torchvision's weights only
        assert "--mean-subtraction" not in options or path == "flowprep extract", path
        assert "--max-frames" not in options or path == "flowprep extract", path
        assert "--frames" not in options or path == "flowprep make-demo-data", path
        assert "--shards" not in options and "--batch" not in options and "--checkpoint" not in options, path
    assert "first" in options_of(commands()["flowprep extract"])["--max-frames"].help


@pytest.mark.parametrize("main, args, old, new", [
    (twostream_main, ["train", "x", "--out", "r", "--workers", "0"], "--workers", "--loader-workers"),
    (twostream_main, ["evaluate", "r", "--part", "val"], "--part", "--subset"),
    (twostream_main, ["fuse", "a", "b", "--out", "f", "--weights", "1:2"], "--weights", "--ratio"),
    (twostream_main, ["train", "x", "--out", "r", "--no-mean-subtraction"], "--no-mean-subtraction",
     "--restore-means"),
    (twostream_main, ["train", "--shards", "x", "--out", "r"], "--shards", "the positional EXTRACTION"),
    (twostream_main, ["evaluate", "--checkpoint", "r/checkpoint.pt"], "--checkpoint", "the positional RUN"),
    (flowprep_main, ["show", "x", "--video", "v", "--out", "v.gif", "--max-frames", "5"], "--max-frames",
     "--gif-frames"),
    (flowprep_main, ["extract", "--manifest", "m.csv", "--out", "o", "--batch", "8"], "--batch", "--batch-size"),
])
def test_an_old_colliding_name_is_refused_not_misread(capsys, main, args, old, new):
    """Each of these was accepted with another meaning in the other command (or as a file where
    folders are meant); now it is a one-line usage error naming the new name."""
    assert run(main, *args) == 2
    err = capsys.readouterr().err
    assert f"no such option {old}: it is {new}" in err and err.count("\n") == 1


def test_evaluate_takes_the_extraction_from_the_run_unless_told(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"\x00" * 10)
    (run_dir / "config.json").write_text(json.dumps({"shards": str(tmp_path / "gone"), "split": "split2"}))
    assert run(twostream_main, "evaluate", run_dir) == 2
    err = capsys.readouterr().err
    assert f"the extraction folder '{tmp_path / 'gone'}' recorded in {run_dir / 'config.json'} is not there" in err
    assert "pass --extraction DIR" in err
    (tmp_path / "empty").mkdir()
    assert run(twostream_main, "evaluate", tmp_path / "empty") == 2
    assert f"run folder {tmp_path / 'empty'} has no checkpoint.pt" in capsys.readouterr().err


def test_fuse_says_which_run_lacks_its_scores(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "t").mkdir()
    assert run(twostream_main, "fuse", tmp_path / "s", tmp_path / "t", "--out", tmp_path / "f") == 2
    err = capsys.readouterr().err
    assert f"run folder {tmp_path / 's'} has no scores_test.npz; write it with 'twostream evaluate" in err


def test_extract_device_auto_is_the_cpu_for_cpu_backends():
    from flowprep.cli.extract import resolve_device
    from flowprep.flow.registry import FLOW_METHODS

    tvl1 = FLOW_METHODS["tvl1"]
    assert resolve_device("auto", tvl1) == "cpu" and resolve_device("cuda:1", tvl1) == "cuda:1"


def test_help_imports_no_torch():
    """`twostream --help` took 6.5 s: the fusion CLI imported torch for two names. Every command's
    --help, in a fresh interpreter, now leaves torch unimported."""
    paths = sorted(commands())
    script = f"""
import sys
from flowprep.cli.main import main as flowprep
from twostream.cli.main import main as twostream
for path in {paths!r} + ['flowprep', 'twostream']:
    program, *args = path.split()
    try:
        (flowprep if program == 'flowprep' else twostream)(args + ['--help'])
    except SystemExit as exit:
        assert exit.code in (0, None), (path, exit.code)
print('torch imported' if 'torch' in sys.modules else 'no torch')
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "no torch"
    assert "Usage: twostream evaluate [OPTIONS] RUN" in result.stdout


@pytest.mark.parametrize("path, args, field, value", [
    ("twostream train", ["x", "--out", "r", "--restore-means"], "mean_subtraction", False),
    ("twostream train", ["x", "--out", "r"], "mean_subtraction", True),
    ("twostream train", ["x", "--out", "r", "--loader-workers", "0"], "workers", 0),
    ("twostream evaluate", ["r", "--subset", "val"], "subset", "val"),
    ("twostream fuse", ["a", "b", "--out", "f", "--ratio", "1:2"], "weights", (1.0, 2.0)),
    ("twostream fuse-features train", ["x", "--spatial", __file__, "--temporal", __file__, "--out", "r",
                                       "--subset", "val"], "subset", "val"),
    ("flowprep extract", ["--manifest", "m", "--out", "o", "--batch-size", "8"], "batch", 8),
    ("flowprep show", ["p", "--video", "v", "--out", "v.gif", "--gif-frames", "5", "--rows", "2", "--indices", "1,2"],
     "max_frames", 5),
])
def test_a_new_name_reaches_the_config_field_it_sets(path, args, field, value):
    """The renamed options keep the configs' field names: only the command line changed."""
    context = commands()[path].make_context(path.split()[-1], list(args))
    assert context.params[field] == value
