"""The architecture as the folders show it. Three packages: runkit (what every run of a command
needs), flowprep (extraction) and twostream (training); between them, the imports PACKAGES allows
and no other: runkit imports neither tool, flowprep imports runkit (never twostream), twostream
imports runkit and reads flowprep through its on-disk contract, flowprep.format, and its one public
surface, flowprep.api (what twostream computes exactly as flowprep does). Inside a package
every import between subpackages points downward (CLI -> features -> engine -> data/core -> the
file formats), and no module imports one that imports it back."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

ROOTS = ("runkit", "flowprep", "twostream")
# What each package may import from the other two (a prefix of the imported module's name). There is
# no exception to it: where twostream computes exactly what flowprep computes (a new video's input
# for predict, the learned-flow stem), it imports flowprep's own code from flowprep.api, the names
# flowprep offers other packages, and nothing else of flowprep past its formats.
PACKAGES = {
    "runkit": (),
    "flowprep": ("runkit",),
    "twostream": ("runkit", "flowprep.format", "flowprep.api"),
}

# Each subpackage's layer: a module may import from its own subpackage and from lower layers only.
LAYERS = {
    # runkit is one flat subpackage: its modules import each other, never the tools
    "runkit": 0,
    "flowprep.format": 0,
    "flowprep.flow": 1,
    "flowprep.extract": 2,
    "flowprep.manifests": 3, "flowprep.rawframes": 3, "flowprep.tools": 3, "flowprep.demo": 3,
    "flowprep.cli": 4,
    # flowprep's public surface for other packages (twostream): over extract, flow, manifests, tools
    "flowprep.api": 4,
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


def subpackage(module: str) -> str | None:
    return next((p for p in LAYERS if module == p or module.startswith(p + ".")), None)


def imports(path: Path, module: str) -> list[str]:
    """The runkit/flowprep/twostream modules that `module` (the file at `path`) imports, anywhere in it
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
    return [m for m in found if m.split(".")[0] in ROOTS]


def layering_problems(module: str, targets: list[str]) -> list[str]:
    """The imports of `module` that break the layering: into another package past what PACKAGES
    allows it, upward within its own package."""
    root, own = module.split(".")[0], subpackage(module)
    problems = []
    for target in targets:
        other = subpackage(target)
        if target.split(".")[0] != root:
            if not any(target == a or target.startswith(a + ".") for a in PACKAGES[root]):
                reads = f"imports {', '.join(PACKAGES[root])} only" if PACKAGES[root] else "imports neither tool"
                problems.append(f"{target} ({root} {reads})")
        elif own is not None and other is not None and other != own and LAYERS[other] >= LAYERS[own]:
            problems.append(f"{target} (layer {LAYERS[other]} from layer {LAYERS[own]})")
    return problems


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in ROOTS:
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
    resolved, those inside functions, and imports between the packages in any form."""
    source = tmp_path / "m.py"
    source.write_text("from . import codecs\nfrom ..cli.main import cli\nfrom .. import tools\n"
                      "def later():\n    import twostream.api\n    from twostream import core\n")
    found = imports(source, "flowprep.format.m")
    assert sorted(found) == ["flowprep.cli.main", "flowprep.format.codecs", "flowprep.tools", "twostream",
                             "twostream.api"]
    assert sorted(layering_problems("flowprep.format.m", found)) == [
        "flowprep.cli.main (layer 4 from layer 0)", "flowprep.tools (layer 3 from layer 0)",
        "twostream (flowprep imports runkit only)", "twostream.api (flowprep imports runkit only)"]
    # the top-level modules too (flowprep/__main__.py has no subpackage)
    assert layering_problems("flowprep.__main__", ["twostream.cli.main", "runkit.launch"]) == [
        "twostream.cli.main (flowprep imports runkit only)"]


def test_each_package_reads_the_others_only_as_allowed():
    assert layering_problems("runkit.cli", ["flowprep.format.codecs", "twostream.core.errors", "runkit.signals"]) == [
        "flowprep.format.codecs (runkit imports neither tool)",
        "twostream.core.errors (runkit imports neither tool)"]
    # twostream reads flowprep through its formats and flowprep.api (a prefix of a module's name, not of
    # any string), never flowprep's inside, even for a subpackage that computes as flowprep does
    only = "(twostream imports runkit, flowprep.format, flowprep.api only)"
    assert layering_problems("twostream.data.store", ["flowprep.format.shards", "runkit.files", "flowprep.api",
                                                      "flowprep.formats", "flowprep.apis", "flowprep.extract.progress",
                                                      "flowprep.cli.support"]) == [
        f"flowprep.formats {only}", f"flowprep.apis {only}", f"flowprep.extract.progress {only}",
        f"flowprep.cli.support {only}"]
    assert layering_problems("twostream.predict.video_input", ["flowprep.api", "flowprep.extract.decode",
                                                               "flowprep.flow.registry"]) == [
        f"flowprep.extract.decode {only}", f"flowprep.flow.registry {only}"]
    assert layering_problems("twostream.streams.motion_models", ["flowprep.flow.tvl1.layer"]) == [
        f"flowprep.flow.tvl1.layer {only}"]
    # flowprep.api sits above what it offers, beside the CLI: it imports neither the CLI nor twostream
    assert layering_problems("flowprep.api", ["flowprep.extract.decode", "flowprep.tools.flow_viz", "flowprep.cli.main",
                                              "twostream.core.errors"]) == [
        "flowprep.cli.main (layer 4 from layer 4)", "twostream.core.errors (flowprep imports runkit only)"]


def architecture_layout() -> dict[str, str]:
    """docs/architecture.md's layout block, as {"flowprep/extract": its text, "runkit": its own lines, ...}."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("## Repository layout", 1)[1].split("```", 2)[1]
    chunks: dict[str, str] = {}
    key = None
    for line in block.splitlines():
        package = re.match(r"^(runkit|flowprep|twostream)/", line)
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


def test_the_architecture_page_names_every_module():
    """docs/architecture.md's layout section (linked from the README) is where a newcomer looks for
    a module: every module is named there, under its own subpackage."""
    chunks = architecture_layout()
    missing = []
    for module, path in modules():
        parts = path.relative_to(REPO).parts
        if path.stem in ("__init__", "__main__"):
            continue
        key = "/".join(parts[:2]) if len(parts) > 2 else parts[0]
        if not re.search(rf"(?<![\w.]){re.escape(path.stem)}(?!\w)", chunks.get(key, "")):
            missing.append(module)
    assert missing == [], "docs/architecture.md's layout section does not name these modules"


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


@pytest.mark.parametrize("package", ROOTS)
def test_no_import_cycle(package):
    """No module imports, even lazily, a module that imports it back: each reads on its own, and a
    folder's modules stack in floors."""
    assert import_cycles(module_graph(package)) == []


# The one JSON reader (issue 30, item 9): every JSON document the tools read goes through
# runkit.files.parse_json, which turns a document nested 100,000 deep into one line
# (json's parser recurses once per level) and checks the document's type where the caller says.
JSON_READER = "runkit/files.py"


def test_every_json_document_is_read_through_the_one_reader():
    calls = []
    for package in ROOTS:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Attribute) and node.attr in ("load", "loads")
                        and isinstance(node.value, ast.Name) and node.value.id == "json"):
                    calls.append(f"{path.relative_to(REPO).as_posix()}:{node.lineno}")
    assert [c for c in calls if not c.startswith(JSON_READER + ":")] == []
    assert len(calls) == 1, calls  # the reader itself: the check would pass vacuously if it missed it
