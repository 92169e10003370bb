"""The documentation holds together: every relative link in the README, the CHANGELOG and docs/
reaches a file that exists, and every `#anchor` a heading of that file; the README stays a front
page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.unit

PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) outside code; images too. Targets with a scheme (https:, mailto:) are not ours.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        base = slug(heading)
        # GitHub numbers a repeated heading's anchor: name, name-1, name-2 ...
        n = sum(1 for a in found if a == base or re.fullmatch(rf"{re.escape(base)}-\d+", a))
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_reaches_a_file_and_a_heading(page: Path):
    assert page.exists(), f"{page.relative_to(ROOT)} is missing"
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists():
            broken.append(f"{target}: no such file")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(f"{target}: no heading with that anchor in {where.name}")
    assert broken == [], f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_readme_is_a_front_page():
    """What it is, the two commands, requirements, the picture, one current result, the map."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for heading in ("Two commands", "Requirements", "How it works", "Current result"):
        assert re.search(rf"^## {heading}$", text, re.M), heading
    assert "make test" in text and "make run" in text
    docs = {p.name for p in (ROOT / "docs").glob("*.md")}
    mapped = {Path(t).name for t in links(ROOT / "README.md") if t.startswith("docs/")}
    assert docs <= mapped, f"pages the README's map leaves out: {sorted(docs - mapped)}"


def test_the_slug_follows_githubs_rule():
    assert slug("How the turn got fast") == "how-the-turn-got-fast"
    assert slug("Calls, replicas and `metrics`") == "calls-replicas-and-metrics"
    assert slug("Which LLM by default?") == "which-llm-by-default"
