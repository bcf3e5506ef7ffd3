"""The README and the docs pages: every relative link leads to a file (and a heading) that exists,
the README links every docs page, and every figure block sits where `make readme-figures` renders
it, holding exactly what it renders from the saved results (no figure typed by hand)."""
from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def prose(text: str) -> str:
    """The page without its fenced code blocks (a `[x](y)` or `# comment` there is code, not markdown)."""
    return FENCE.sub("", text)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens,
    a repeated heading numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", prose(page.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not checked offline
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    return broken


def test_github_anchors_are_computed_as_github_does(tmp_path):
    """The checker below holds only if its anchors are GitHub's: punctuation and backticks
    dropped, a repeated heading numbered; a heading inside a code block is no heading."""
    page = tmp_path / "p.md"
    page.write_text("# The demo: the two-stream effect, end to end\n## What `make demo` runs\n## Notes\n"
                    "## Notes\n```\n# not a heading\n```\n[ok](#notes-1) [bad](#nothing) [gone](missing.md)\n")
    assert anchors(page) == {"the-demo-the-two-stream-effect-end-to-end", "what-make-demo-runs", "notes", "notes-1"}
    assert broken_links(page) == ["#nothing: no heading #nothing in p.md", "missing.md: no such file"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_somewhere(page):
    assert broken_links(page) == []


def test_every_docs_page_named_in_the_pages_exists():
    """Plain mentions (`docs/fusion.md`, as code comments and prose write them) name real pages."""
    named = {m for page in PAGES for m in re.findall(r"docs/\w+\.md", page.read_text(encoding="utf-8"))}
    assert sorted(m for m in named if not (REPO / m).exists()) == []


def test_the_readme_links_every_docs_page():
    linked = {(REPO / target.partition("#")[0]).resolve()
              for target in LINK.findall((REPO / "README.md").read_text(encoding="utf-8"))}
    assert sorted(p.name for p in PAGES[1:] if p.resolve() not in linked) == []


def render_readme(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    return importlib.import_module("render_readme")


def test_every_figure_block_is_on_a_page_the_renderer_renders(monkeypatch):
    renderer = render_readme(monkeypatch)
    texts = {page: page.read_text(encoding="utf-8") for page in renderer.PAGES}
    nowhere = [name for name in renderer.RENDERERS
               if not any(renderer.block_pattern(name).search(text) for text in texts.values())]
    assert nowhere == []
    # and no page outside PAGES holds a block the renderer would never reach
    strays = [f"{page.name}: {name}" for page in PAGES if page not in texts
              for name in re.findall(r"<!-- BEGIN (\w+) -->", page.read_text(encoding="utf-8"))]
    assert strays == []


def test_every_figure_block_holds_what_its_saved_result_renders(monkeypatch):
    """A block is what render_readme writes from benchmarks/results/*.json, to the character
    (the demos' tables come from out/, absent from a checkout: those are skipped)."""
    renderer = render_readme(monkeypatch)
    checked, differ = 0, []
    for page in renderer.PAGES:
        text = page.read_text(encoding="utf-8")
        for name, (result, render) in renderer.RENDERERS.items():
            match = re.search(rf"<!-- BEGIN {name} -->\n(.*?)<!-- END {name} -->", text, re.S)
            if not match or not result.exists():
                continue
            checked += 1
            if match.group(1) != render(json.loads(result.read_text())) + "\n":
                differ.append(f"{page.name}: {name}")
    assert checked >= 9 and differ == []
