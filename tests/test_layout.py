"""The architecture as the folders show it: every import between subpackages points downward
(CLI -> features -> engine -> data/core -> the file formats), and twostream reads flowprep only
through its formats (and the command-line conventions both CLIs share)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

# Each subpackage's layer: a module may import from its own subpackage and from lower layers only.
LAYERS = {
    "flowprep.format": 0,
    "flowprep.extract": 1,
    "flowprep.manifests": 2, "flowprep.rawframes": 2, "flowprep.tools": 2, "flowprep.demo": 2,
    "flowprep.cli": 3,
    "twostream.core": 1,
    "twostream.data": 2,
    "twostream.engine": 3,
    "twostream.streams": 4, "twostream.score_fusion": 4,
    "twostream.feature_fusion": 5,
    "twostream.cli": 6,
    # the Python API for users' own loops (docs/api.md): one module over data, engine, streams and
    # score fusion, beside the command line
    "twostream.api": 6,
}
# What twostream may take from flowprep: the formats, and how every command of the project behaves.
TRAIN_MAY_IMPORT = ("flowprep.format", "flowprep.cli.support")


def subpackage(module: str) -> str | None:
    return next((p for p in LAYERS if module == p or module.startswith(p + ".")), None)


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [m for m in found if m.split(".")[0] in ("flowprep", "twostream")]


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in ("flowprep", "twostream"):
        for path in sorted((REPO / package).rglob("*.py")):
            found.append((".".join(path.relative_to(REPO).with_suffix("").parts), path))
    return found


def test_every_module_lives_in_a_subpackage_of_its_role():
    top_level = {"flowprep.__init__", "flowprep.__main__", "twostream.__init__", "twostream.__main__"}
    loose = [m for m, _ in modules() if m not in top_level and subpackage(m) is None]
    assert loose == []


@pytest.mark.parametrize("module,path", modules(), ids=[m for m, _ in modules()])
def test_imports_point_downward(module, path):
    own = subpackage(module)
    if own is None:
        return
    upward = []
    for target in imports(path):
        other = subpackage(target)
        if other is None or other == own:
            continue
        if own.startswith("twostream.") and other.startswith("flowprep.") and not target.startswith(TRAIN_MAY_IMPORT):
            upward.append(f"{target} (twostream reads flowprep through {', '.join(TRAIN_MAY_IMPORT)} only)")
        elif own.split(".")[0] == other.split(".")[0] and LAYERS[other] >= LAYERS[own]:
            upward.append(f"{target} (layer {LAYERS[other]} from layer {LAYERS[own]})")
    assert upward == []


def readme_layout() -> dict[str, str]:
    """The README's layout block, as {"flowprep/extract": its text, "twostream": its own lines, ...}."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Repository layout", 1)[1].split("```", 2)[1]
    chunks: dict[str, str] = {}
    key = None
    for line in block.splitlines():
        package = re.match(r"^(flowprep|twostream)/", line)
        sub = re.match(r"^  (\w+)/\s", line)
        if package:
            key = root = package.group(1)
        elif sub and key:
            key = f"{root}/{sub.group(1)}"
        elif re.match(r"^\S", line):
            key = None
        elif re.match(r"^  \w+\.py\s", line) and key:
            key = root  # a top-level module's line
        if key:
            chunks[key] = chunks.get(key, "") + " " + line
    return chunks


def test_the_readme_layout_names_every_module():
    """The README's layout section is where a newcomer looks first: every module is named there,
    under its own subpackage."""
    chunks = readme_layout()
    missing = []
    for module, path in modules():
        parts = path.relative_to(REPO).parts
        if path.stem in ("__init__", "__main__"):
            continue
        key = "/".join(parts[:2]) if len(parts) > 2 else parts[0]
        if not re.search(rf"(?<![\w.]){re.escape(path.stem)}(?!\w)", chunks.get(key, "")):
            missing.append(module)
    assert missing == [], "README.md's layout section does not name these modules"
