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
    "flowprep.flow": 1,
    "flowprep.extract": 2,
    "flowprep.manifests": 3, "flowprep.rawframes": 3, "flowprep.tools": 3, "flowprep.demo": 3,
    "flowprep.cli": 4,
    "twostream.core": 1,
    "twostream.data": 2,
    "twostream.engine": 3,
    "twostream.streams": 4, "twostream.score_fusion": 4,
    "twostream.feature_fusion": 5,
    # classifying new videos, live streams and exported models with trained runs (twostream predict)
    "twostream.predict": 6,
    "twostream.cli": 7,
    # the Python API for users' own loops (docs/api.md): one module over data, engine, streams and
    # score fusion, beside the command line
    "twostream.api": 7,
}
# What twostream may take from flowprep: the formats, and how every command of the project behaves
# (its errors and exit statuses; its progress bar), and the learned TV-L1 layer (tvl1-torch's
# iterations as a network layer: the learned-flow stream's first layer, and its parameters' declaration).
TRAIN_MAY_IMPORT = ("flowprep.format", "flowprep.cli.support", "flowprep.extract.progress", "flowprep.flow.tvl1_layer",
                    "flowprep.flow.tvl1_params")
# Predicting a new video must compute its input exactly as the extraction the runs were trained on
# did: twostream.predict alone also calls flowprep's decoding, sampling, resizing and flow (and its
# flow pictures, for --live --show), never a copy of them.
PREDICT_MAY_IMPORT = ("flowprep.extract.decode", "flowprep.extract.frames", "flowprep.extract.video_job",
                      "flowprep.extract.config", "flowprep.flow", "flowprep.manifests.folder",
                      "flowprep.tools.flow_viz")


def subpackage(module: str) -> str | None:
    return next((p for p in LAYERS if module == p or module.startswith(p + ".")), None)


def imports(path: Path, module: str) -> list[str]:
    """The flowprep/twostream modules that `module` (the file at `path`) imports, anywhere in it
    (lazy imports in functions too), relative imports resolved against its own package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".")[:-1]  # a module's package; `x.__init__`'s is x
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
        elif isinstance(node, ast.ImportFrom):  # from . import x, from ..y import z
            base = package[:len(package) - (node.level - 1)]
            if node.module:
                found.append(".".join(base + [node.module]))
            else:
                found += [".".join(base + [alias.name]) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [m for m in found if m.split(".")[0] in ("flowprep", "twostream")]


def layering_problems(module: str, targets: list[str]) -> list[str]:
    """The imports of `module` that break the layering: upward within a package, flowprep reading
    twostream at all (flowprep is usable without the trainer), twostream reading flowprep past
    its formats and CLI conventions."""
    own = subpackage(module)
    problems = []
    for target in targets:
        if module.startswith("flowprep.") and target.split(".")[0] == "twostream":
            problems.append(f"{target} (flowprep never imports twostream)")
            continue
        other = subpackage(target)
        if own is None or other is None or other == own:
            continue
        allowed = TRAIN_MAY_IMPORT + (PREDICT_MAY_IMPORT if own == "twostream.predict" else ())
        if own.startswith("twostream.") and other.startswith("flowprep.") and not target.startswith(allowed):
            problems.append(f"{target} (twostream reads flowprep through {', '.join(TRAIN_MAY_IMPORT)} only)")
        elif own.split(".")[0] == other.split(".")[0] and LAYERS[other] >= LAYERS[own]:
            problems.append(f"{target} (layer {LAYERS[other]} from layer {LAYERS[own]})")
    return problems


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
    assert layering_problems(module, imports(path, module)) == []


def test_the_checker_sees_relative_lazy_and_cross_package_imports(tmp_path):
    """The rules above hold only if the checker sees every kind of import: relative ones
    resolved, those inside functions, and flowprep importing twostream in any form."""
    source = tmp_path / "m.py"
    source.write_text("from . import codecs\nfrom ..cli.main import cli\nfrom .. import tools\n"
                      "def later():\n    import twostream.api\n    from twostream import core\n")
    found = imports(source, "flowprep.format.m")
    assert sorted(found) == ["flowprep.cli.main", "flowprep.format.codecs", "flowprep.tools", "twostream",
                             "twostream.api"]
    assert sorted(layering_problems("flowprep.format.m", found)) == [
        "flowprep.cli.main (layer 4 from layer 0)", "flowprep.tools (layer 3 from layer 0)",
        "twostream (flowprep never imports twostream)", "twostream.api (flowprep never imports twostream)"]
    # the top-level modules too (flowprep/__main__.py has no subpackage)
    assert layering_problems("flowprep.__main__", ["twostream.cli.main"]) == [
        "twostream.cli.main (flowprep never imports twostream)"]


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


def module_graph(package: str) -> dict[str, set[str]]:
    """{module: the modules of `package` it imports}, lazy imports included: `from a.b import c`
    points at the module a.b.c where there is one, else at a.b (a package: its __init__)."""
    found = {m: path for m, path in modules() if m.split(".")[0] == package}
    graph: dict[str, set[str]] = {}
    for module, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [(node.module, [a.name for a in node.names]) for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module]
        targets = set()
        for target in imports(path, module):
            listed = next((n for m, n in names if m == target), [])
            submodules = [f"{target}.{n}" for n in listed if f"{target}.{n}" in found]
            targets |= set(submodules) if submodules else {target if target in found else f"{target}.__init__"}
        graph[module] = {t for t in targets if t in found and t != module}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of `graph`, each once, as the path that closes it (depth-first search)."""
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_cycles_and_only_cycles():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


@pytest.mark.parametrize("package", ["flowprep", "twostream"])
def test_no_import_cycle(package):
    """No module imports, even lazily, a module that imports it back: each reads on its own, and a
    folder's modules stack in floors."""
    assert import_cycles(module_graph(package)) == []


# The one JSON reader (issue 30, item 9): every JSON document the tools read goes through
# flowprep.format.files.parse_json, which turns a document nested 100,000 deep into one line
# (json's parser recurses once per level) and checks the document's type where the caller says.
JSON_READER = "flowprep/format/files.py"


def test_every_json_document_is_read_through_the_one_reader():
    calls = []
    for package in ("flowprep", "twostream"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Attribute) and node.attr in ("load", "loads")
                        and isinstance(node.value, ast.Name) and node.value.id == "json"):
                    calls.append(f"{path.relative_to(REPO).as_posix()}:{node.lineno}")
    assert [c for c in calls if not c.startswith(JSON_READER + ":")] == []
    assert len(calls) == 1, calls  # the reader itself: the check would pass vacuously if it missed it
