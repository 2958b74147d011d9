"""The documentation stands on its own: every relative link and anchor in README.md and docs/
resolves, every docs/*.md#anchor cited in code, config and tests exists, no reference points to a
document outside the repository, the README stays short, and `spurlab --help` gives every
subcommand a stage."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

README_MAX_LINES = 200
# written in two parts so that this file does not match itself
OUTSIDE_REFERENCES = [re.compile("S" + "PEC" + r" [0-9]"), re.compile("ARCHI" + "TECTURE" + r"\.md"),
                      re.compile(r"\.\./shared/")]  # fmt: skip
LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_REF = re.compile(r"((?:docs/)?[\w./-]*\.md)#([\w-]+)((?:, #[\w-]+)*)")


def tracked_files() -> list[Path]:
    """Files under version control (git ls-files); without git, every file outside ignored trees."""
    if shutil.which("git") and (ROOT / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        files = [ROOT / name for name in out.decode().split("\0") if name]
    else:
        skip = {".git", ".venv", "results", "logs", "benchmarks", ".snakemake", "__pycache__"}
        files = [p for p in ROOT.rglob("*") if not skip & set(p.relative_to(ROOT).parts)]
    return [p for p in files if p.is_file() and not p.is_symlink()]


def text_of(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def markdown_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower case, without punctuation other than
    '-' and '_', spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links render as their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def prose_lines(text: str, strip_code: bool = True):
    """(line number, line) outside fenced code blocks, with inline code removed (by default)."""
    fenced = False
    for n, line in enumerate(text.split("\n"), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield n, re.sub(r"`[^`]*`", "", line) if strip_code else line


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, duplicates numbered as GitHub does (-1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8"), strip_code=False):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def check_target(source: Path, target: str, root: Path = ROOT) -> str | None:
    """None if `target` (a relative link in `source`) resolves, else why not."""
    path_part, _, anchor = target.partition("#")
    dest = (source.parent / path_part).resolve() if path_part else source
    if not dest.exists():
        return f"{path_part}: no such file"
    try:
        dest.relative_to(root.resolve())
    except ValueError:
        return f"{path_part}: outside the repository"
    if anchor:
        if dest.is_dir() or dest.suffix != ".md":
            return f"#{anchor}: anchor into a non-markdown target"
        if anchor not in anchors(dest):
            return f"#{anchor}: no such heading in {dest.relative_to(root.resolve())}"
    return None


def broken_links(files: list[Path], root: Path = ROOT) -> list[str]:
    problems = []
    for path in files:
        for n, line in prose_lines(path.read_text(encoding="utf-8")):
            for m in LINK.finditer(line):
                target = m.group(2) or m.group(3)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                    continue
                why = check_target(path, target, root)
                if why:
                    problems.append(f"{path.relative_to(root)}:{n}: ({target}) {why}")
    return problems


def test_markdown_links_and_anchors_resolve():
    assert broken_links(markdown_files()) == []


def test_the_link_check_catches_a_broken_link_and_a_broken_anchor(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/a.md").write_text("# A page\n\n## Some `code` heading\n\ntext\n")
    (tmp_path / "README.md").write_text(
        "[ok](docs/a.md#some-code-heading) [ok too](#top) `[not a link](missing.md)`\n"
        "[gone](docs/missing.md) [bad anchor](docs/a.md#no-such-heading)\n\n# Top\n"
        "```\n[in a code block](nowhere.md)\n```\n")  # fmt: skip
    problems = broken_links(markdown_files(tmp_path), tmp_path)
    assert len(problems) == 2, problems
    assert "docs/missing.md: no such file" in problems[0] and "#no-such-heading" in problems[1]


def test_github_slugs():
    assert slug("5.2 Spuriosity") == "52-spuriosity"
    assert slug("Why a planted truth needs the cues' absence too") == "why-a-planted-truth-needs-the-cues-absence-too"
    assert slug("`bam.benchmark`: BAM (target `bam`, [BAM metrics](x.md#bam-metrics))") == \
        "bambenchmark-bam-target-bam-bam-metrics"  # fmt: skip


def test_docs_anchors_cited_in_code_config_and_tests_exist():
    """A methods anchor cited in any tracked text file (one, or a list of `#anchor`s after it)."""
    problems = []
    for path in tracked_files():
        text = text_of(path)
        if text is None or path.suffix == ".md" and "docs" in path.relative_to(ROOT).parts[:1]:
            continue
        for m in CODE_REF.finditer(text):
            doc = m.group(1)
            target = ROOT / doc if doc.startswith("docs/") else ROOT / "docs" / doc
            if not target.is_file():
                continue  # a markdown link elsewhere, or a path relative to something else
            names = [m.group(2)] + re.findall(r"#([\w-]+)", m.group(3))
            missing = [a for a in names if a not in anchors(target)]
            if missing:
                line = text[: m.start()].count("\n") + 1
                problems.append(f"{path.relative_to(ROOT)}:{line}: {doc} has no heading for {missing}")
    assert problems == []


def test_no_reference_to_documents_outside_the_repository():
    problems = []
    for path in tracked_files():
        if path.resolve() == Path(__file__).resolve():
            continue
        text = text_of(path)
        if text is None:
            continue
        for pattern in OUTSIDE_REFERENCES:
            for m in pattern.finditer(text):
                line = text[: m.start()].count("\n") + 1
                problems.append(f"{path.relative_to(ROOT)}:{line}: {m.group(0)!r}")
    assert problems == []


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").rstrip("\n").split("\n")
    assert len(lines) <= README_MAX_LINES


@pytest.mark.parametrize("name", ["methods.md", "architecture.md", "performance.md", "findings/README.md"])
def test_the_docs_the_readme_relies_on_exist(name):
    assert (ROOT / "docs" / name).is_file()


def test_help_lists_every_subcommand_under_a_stage():
    from spurlab.cli import COMMAND_STAGES, make_parser

    parser = make_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    staged = [c for _, listed in COMMAND_STAGES.values() for c in listed]
    assert len(staged) == len(set(staged)), "a command is listed under two stages"
    assert commands - set(staged) == set(), "add these to spurlab.cli.COMMAND_STAGES"
    assert set(staged) - commands == set(), "COMMAND_STAGES names commands that do not exist"
    text = parser.format_help()
    for stage in COMMAND_STAGES:
        assert f"\n{stage}: " in text
    assert "\nother: " not in text
    for command in commands:
        assert re.search(rf"^  {re.escape(command)} +\S", text, re.M), command
