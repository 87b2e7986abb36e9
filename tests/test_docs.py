"""The documentation in the repository keeps up with the product.

`docs/commands.md` gives every command of `loket` a heading of its own whose first code span is
the command path (``### `loket case advance` ``); everything up to the next heading of the same
or a higher level is that command's section. Each option and argument must appear in its own
command's section, so that an option documented only under another command still counts as
missing. Headings that name commands the product does not have fail too, so the reference
cannot drift the other way. And every relative link in README.md and docs/ must lead to a file
(and, with a `#fragment`, to a heading) that exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
COMMANDS = DOCS / "commands.md"

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_FIRST_CODE = re.compile(r"`([^`]+)`")


def _commands(command: click.Command, path: tuple[str, ...] = ("loket",)) -> Iterator[tuple[str, click.Command]]:
    """Every command of the tree with its path ("loket case advance"), groups included."""
    yield " ".join(path), command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))


def _headings(lines: list[str]) -> Iterator[tuple[int, int, str]]:
    """(line index, level, text) of every Markdown heading outside fenced code blocks."""
    fenced = False
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced and (match := _HEADING.match(line)):
            yield index, len(match.group(1)), match.group(2)


def _sections(text: str) -> dict[str, str]:
    """Command path → the text of its section, for headings whose first code span names one."""
    lines = text.splitlines()
    headings = list(_headings(lines))
    sections: dict[str, str] = {}
    for number, (start, level, title) in enumerate(headings):
        code = _FIRST_CODE.search(title)
        if code is None or not code.group(1).startswith("loket"):
            continue
        end = next((i for i, lvl, _ in headings[number + 1:] if lvl <= level), len(lines))
        sections[code.group(1).strip()] = "\n".join(lines[start:end])
    return sections


def _option_names(command: click.Command) -> list[str]:
    """Every spelling of every option (`--open`, `--closed`, `-o`, `--output`); help is
    documented once, under the global options."""
    return [name for param in command.params if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)]


def _argument_names(command: click.Command) -> list[str]:
    """The metavar of every argument as its usage line shows it, without `[`, `]` and `...`
    (`[KEY]...` → `KEY`, `FIELD=VALUE...` → `FIELD=VALUE`)."""
    names = []
    for param in command.params:
        if isinstance(param, click.Argument):
            names.append(param.human_readable_name.replace("...", "").strip("[]"))
    return names


def _mentions(section: str, word: str) -> bool:
    """`word` as a whole token: `--type` must not be found inside `--types`, nor `-o` in `--org`."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", section) is not None


COMMAND_TREE = list(_commands(cli.cli))


def test_the_tree_is_walked() -> None:
    paths = {path for path, _ in COMMAND_TREE}
    assert {"loket", "loket case", "loket case advance", "loket audit export", "loket worker"} <= paths


def test_every_command_has_its_own_section_in_commands_md() -> None:
    sections = _sections(COMMANDS.read_text(encoding="utf-8"))
    missing = [path for path, _ in COMMAND_TREE if path not in sections]
    assert not missing, f"docs/commands.md has no heading for: {', '.join(missing)}"


@pytest.mark.parametrize(("path", "command"), COMMAND_TREE, ids=[path for path, _ in COMMAND_TREE])
def test_every_option_and_argument_is_documented_in_its_commands_section(path: str, command: click.Command) -> None:
    section = _sections(COMMANDS.read_text(encoding="utf-8")).get(path)
    assert section is not None, f"docs/commands.md has no heading for {path}"
    missing = [name for name in (*_option_names(command), *_argument_names(command)) if not _mentions(section, name)]
    assert not missing, f"docs/commands.md, section '{path}', does not mention: {', '.join(missing)}"


def test_commands_md_documents_no_command_that_does_not_exist() -> None:
    paths = {path for path, _ in COMMAND_TREE}
    unknown = sorted(set(_sections(COMMANDS.read_text(encoding="utf-8"))) - paths)
    assert not unknown, f"docs/commands.md has headings for commands loket does not have: {', '.join(unknown)}"


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    sources = [ROOT / "cli.py", *(ROOT / "engine").rglob("*.py"), *(ROOT / "notifications").rglob("*.py")]
    used = {name for source in sources for name in re.findall(r"\bLOKET_[A-Z_]+\b", source.read_text(encoding="utf-8"))}
    assert "LOKET_DB" in used
    text = COMMANDS.read_text(encoding="utf-8")
    missing = sorted(name for name in used if not _mentions(text, name))
    assert not missing, f"docs/commands.md does not describe: {', '.join(missing)}"


# -- links ------------------------------------------------------------------------------------

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code, where a link is a link."""
    kept, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(_INLINE_CODE.sub("", line))
    return "\n".join(kept)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for _, _, title in _headings(path.read_text(encoding="utf-8").splitlines()):
        base = slug(title)
        seen = counts.get(base, 0)
        found.add(base if seen == 0 else f"{base}-{seen}")
        counts[base] = seen + 1
    return found


def _links() -> Iterator[tuple[Path, str]]:
    for path in _markdown_files():
        for target in _LINK.findall(_prose(path.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            yield path, target


def test_the_documentation_has_links_to_check() -> None:
    files = {path.name for path, _ in _links()}
    assert {"README.md", "commands.md", "time.md"} <= files


def test_every_relative_link_points_to_an_existing_file_and_heading() -> None:
    broken = []
    for source, target in _links():
        file_part, _, fragment = target.partition("#")
        destination = (source.parent / file_part).resolve() if file_part else source
        where = f"{source.relative_to(ROOT)}: ({target})"
        if not destination.exists():
            broken.append(f"{where} — no such file")
        elif fragment and destination.suffix == ".md" and fragment not in _anchors(destination):
            broken.append(f"{where} — no heading with anchor #{fragment}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_slugs_follow_github() -> None:
    assert slug("`loket case advance`") == "loket-case-advance"
    assert slug("`loket` — global options") == "loket--global-options"
    assert slug("Suspension and resumption") == "suspension-and-resumption"
    assert slug("Who receives a rung (vacancies)") == "who-receives-a-rung-vacancies"
    assert slug("4. A paused state") == "4-a-paused-state"
