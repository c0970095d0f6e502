"""The README and docs/ pages: every relative link and anchor resolves, and every page or section a message
cites exists (plain text checks, no import of bidsad)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _prose(path: Path):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield number, line


def _headings(path: Path) -> dict[str, str]:
    """{anchor: heading text} of a Markdown page."""
    return {_slug(m.group(1)): m.group(1) for _, line in _prose(path) if (m := re.match(r"#{1,6} (.*)", line))}


def test_every_relative_link_and_anchor_resolves():
    assert len(PAGES) >= 9, PAGES
    broken = []
    for page in PAGES:
        for number, line in _prose(page):
            for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line)):
                if re.match(r"[a-z]+:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                dest = (page.parent / file_part).resolve() if file_part else page
                if not dest.exists():
                    broken.append(f"{page.relative_to(ROOT)}:{number}: {target} (no such file)")
                elif anchor and dest.suffix == ".md" and anchor not in _headings(dest):
                    broken.append(f"{page.relative_to(ROOT)}:{number}: {target} (no such anchor)")
    assert not broken, "\n".join(broken)


def test_sections_cited_by_messages_exist():
    """Messages say e.g. "(README: Diagnosis vocabulary)" or "(docs/containers.md, 'SLURM')"."""
    source = (ROOT / "bidsad" / "messages.py").read_text(encoding="utf-8")
    cited = [("README.md", m) for m in re.findall(r"\(README: ([^)]+)\)", source)]
    cited += [(page if page != "README" else "README.md", m)
              for page, m in re.findall(r"\((README|docs/[\w-]+\.md), '([^']+)'\)", source)]
    assert cited
    for page, section in cited:
        assert section in _headings(ROOT / page).values(), (page, section)
