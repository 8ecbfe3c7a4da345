"""The documentation's relative links resolve: every link in README.md, docs/*.md, bench/README.md and
research/README.md points at a file or folder of the repository, and a ``#anchor`` into a Markdown file names one
of its headings (GitHub's slugs). Also: .ci/run runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from conftest import REPO_ROOT

DOCUMENTS = ["README.md", "docs/*.md", "bench/README.md", "research/README.md"]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def documents() -> list[Path]:
    found = sorted({path for pattern in DOCUMENTS for path in REPO_ROOT.glob(pattern)})
    assert found, "no documentation found"
    return found


def prose(text: str) -> str:
    """The Markdown outside fenced code blocks, with inline code spans blanked (their brackets are not links)."""
    kept, fenced = [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            fenced = not fenced
            kept.append("")
        else:
            kept.append("" if fenced else line)
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), "\n".join(kept))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text, lower-cased, punctuation other than '-' and '_' dropped,
    each space turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays, its target goes
    text = text.replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(markdown_file: Path) -> set[str]:
    """Every heading anchor of a Markdown file; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    fenced = False
    for line in markdown_file.read_text(encoding="utf-8").split("\n"):
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(markdown_file: Path) -> list[str]:
    text = prose(markdown_file.read_text(encoding="utf-8"))
    return [m.group(1) for m in INLINE_LINK.finditer(text)] + REFERENCE_DEFINITION.findall(text)


def broken_links(markdown_file: Path, root: Path = REPO_ROOT) -> list[str]:
    """Each relative link of ``markdown_file`` that does not resolve, with the reason."""
    problems = []
    for target in links(markdown_file):
        if EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part)
        resolved = (markdown_file.parent / path_part).resolve() if path_part else markdown_file
        where = f"{markdown_file.relative_to(root)}: ({target})"
        if path_part.startswith("/"):
            problems.append(f"{where} is absolute; links must be relative to the file")
            continue
        if not resolved.exists():
            problems.append(f"{where} points at a missing file")
            continue
        try:
            resolved.relative_to(root)
        except ValueError:
            problems.append(f"{where} leaves the repository")
            continue
        if anchor and resolved.suffix == ".md" and unquote(anchor).lower() not in anchors(resolved):
            problems.append(f"{where}: no heading with anchor #{anchor} in {resolved.relative_to(root)}")
    return problems


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_resolve(document: Path):
    assert broken_links(document) == []


def test_links_are_found():
    """A pattern that finds no links would pass everything: the README links to every docs/ file."""
    found = links(REPO_ROOT / "README.md")
    for document in sorted((REPO_ROOT / "docs").glob("*.md")):
        if document.name != "README.md":
            assert any(link.split("#")[0] == f"docs/{document.name}" for link in found), document.name


def test_the_checker_reports_broken_links_and_anchors(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "target.md").write_text("# Title\n\n## Set-up: the two commands\n\n## `probe_table.py`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](docs/target.md) [ok](docs/target.md#set-up-the-two-commands) [ok](docs/target.md#probe_tablepy)\n"
        "[ok](#here) [web](https://example.org/missing) `[code](missing.md)`\n\n## Here\n\n"
        "```bash\n[fenced](missing.md)\n```\n"
        "[gone](docs/missing.md) ![figure](docs/missing.png) [bad anchor](docs/target.md#no-such-heading)\n"
        "[self](#nowhere)\n\n[ref]: docs/also-missing.md\n"
    )
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 5, problems
    for expected in ("(docs/missing.md)", "(docs/missing.png)", "#no-such-heading", "#nowhere", "also-missing.md"):
        assert any(expected in problem for problem in problems), (expected, problems)


def test_slugs_match_github():
    assert slug("Set-up: the two commands") == "set-up-the-two-commands"
    assert slug("Identification against alignment (issue #16)") == "identification-against-alignment-issue-16"
    assert slug("Three seeds, the protocol's number") == "three-seeds-the-protocols-number"
    assert slug("Embed, identify, export (command line)") == "embed-identify-export-command-line"
    assert slug("Why `bench_alignment.py` is here") == "why-bench_alignmentpy-is-here"


def test_ci_runs_the_readme_test_command():
    """.ci/run must run exactly the README's test command (set-up command 2), so CI tests what a newcomer runs."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n# 2\. tests\n(.+?)\n```", readme)
    assert block, "README.md lost its '# 2. tests' set-up block"
    command = block.group(1).strip()
    ci_lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").split("\n")]
    assert command in ci_lines, f".ci/run does not run the README's test command: {command}"
