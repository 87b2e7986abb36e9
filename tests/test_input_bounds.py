"""Definition files anyone may hand to `loket workflow validate` are read within bounds: a
size limit, an alias-expansion limit and a nesting limit, each refused at once with exit 2 and
the file named, never a crash; and a large but legal file takes time in proportion to its size.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from engine.core.definition import parse_request_type
from engine.core.yamlfile import MAX_ALIASED_VALUES, MAX_DEPTH, MAX_FILE_BYTES, load_file, load_text
from engine.errors import InvalidDefinition
from tests.conftest import run_cli


def alias_bomb(levels: int) -> str:
    """About 300 bytes that stand for 9 ** levels values once every alias is expanded."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


def validate(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    code, _, err = run_cli(capsys, "--db", "sqlite://", "workflow", "validate", str(path))
    return code, err, time.monotonic() - started


@pytest.mark.parametrize("levels", [7, 8, 12])
def test_an_alias_bomb_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], levels: int
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(levels))
    assert path.stat().st_size < 600
    code, err, seconds = validate(capsys, path)
    assert code == 2
    assert f"the aliases repeat more than {MAX_ALIASED_VALUES} values" in err
    assert str(path) in err
    assert seconds < 3  # before the bounds: 24 s and 1.3 GB at 7 levels


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "self.yaml"
    path.write_text("key: x\nloop: &a [1, *a]\n")
    code, err, _ = validate(capsys, path)
    assert code == 2 and f"{path}:2: the alias *a is used inside its own anchor" in err


@pytest.mark.parametrize("text, line", [
    ("key: " + "[" * 50_000 + "]" * 50_000 + "\n", 1),  # before: RecursionError, exit 70
    ("key: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n", 1),
    ("".join("  " * n + f"k{n}:\n" for n in range(200)) + "  " * 200 + "v\n", MAX_DEPTH),
])
def test_deep_nesting_is_refused_before_the_parser_recurses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int
) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    code, err, seconds = validate(capsys, path)
    assert code == 2
    assert f"{path}:{line}: nested deeper than {MAX_DEPTH} levels" in err
    assert seconds < 3


def test_nesting_built_from_aliases_counts_as_nesting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Each anchor nests 10 deep, and each next one puts the previous inside its own 10 levels.
    lines = ["x0: &x0 " + "[" * 10 + "1" + "]" * 10]
    lines += [f"x{n}: &x{n} " + "[" * 10 + f"*x{n - 1}" + "]" * 10 for n in range(1, 8)]
    path = tmp_path / "deep.yaml"
    path.write_text("\n".join(lines) + "\n")
    code, err, _ = validate(capsys, path)
    assert code == 2 and "nested deeper than 50 levels (through the alias *x3)" in err


def test_anchors_and_aliases_within_bounds_still_work() -> None:
    text = (
        "key: x\n"
        "ladder: &ladder [{after: {working_days: 0}, to: lead}, {after: {working_days: 5}, to: head}]\n"
        "again: *ladder\n"
        "base: &base {owner: wijkteam, deadline: {working_days: 5}}\n"
        "state: {<<: *base, label: Open}\n"
        "nested: " + "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 2) + "\n"
    )
    data, locate = load_text(text, "ok.yaml")  # the top-level mapping is the first level, the 1 the 50th
    assert data["again"] == data["ladder"] and data["again"][1]["to"] == "head"
    assert data["state"] == {"owner": "wijkteam", "deadline": {"working_days": 5}, "label": "Open"}
    assert locate(("state", "label")) == 5


def test_a_file_over_the_size_limit_is_refused_without_reading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.yaml"
    with open(path, "wb") as handle:
        handle.truncate(60 * 1024 * 1024)  # 60 MB of nothing, without writing them
    code, err, seconds = validate(capsys, path)
    assert code == 2
    assert f"{path}: the file is {60 * 1024 * 1024} bytes; the limit is {MAX_FILE_BYTES} bytes" in err
    assert seconds < 3


def test_a_stream_over_the_size_limit_is_refused_after_the_limit() -> None:
    read_end, write_end = os.pipe()
    written: list[int] = []

    def write() -> None:
        try:
            with open(write_end, "wb") as out:
                for _ in range(40):
                    out.write(b"# comment\n" * 10_000)
                    written.append(100_000)
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=write)
    writer.start()
    try:
        with pytest.raises(InvalidDefinition, match="the file is larger; the limit is"):
            load_file(f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
        writer.join(timeout=10)
    assert sum(written) < 4_000_000  # the reader stopped; the writer did not get rid of it all


def test_a_text_over_the_size_limit_is_refused() -> None:
    with pytest.raises(InvalidDefinition, match="the limit is"):
        load_text("# é\n" * (MAX_FILE_BYTES // 5 + 1), "big.yaml")  # fewer characters than bytes


def large_type(size: int) -> str:
    """A legal request type with `size` fields and `size` states in a chain (5,000 of each
    are just under the size limit, and take some 10 s)."""
    lines = ["key: groot", "title: Groot", "prefix: GR", "portfolio: wijken", "fields:"]
    lines += [f"  veld_{n}: {{type: text, label: Veld {n}}}" for n in range(size)]
    lines += ["initial: s0", "states:"]
    lines += [f"  s{n}: {{label: Stap {n}, owner: wijkteam, deadline: {{working_days: 5}}}}" for n in range(size)]
    lines += ["  klaar: {label: Klaar, final: true}", "transitions:"]
    lines += [f"  - {{trigger: verder_{n}, from: s{n}, to: s{n + 1}, requires: [veld_{n}]}}" for n in range(size - 1)]
    lines += [f"  - {{trigger: afronden, from: s{size - 1}, to: klaar}}",
              "escalation:", "  - {after: {working_days: 0}, to: lead}"]
    return "\n".join(lines) + "\n"


def test_a_large_legal_file_takes_time_in_proportion_to_its_size(tmp_path: Path) -> None:
    def cpu_seconds(size: int) -> float:
        path = tmp_path / f"groot{size}.yaml"
        path.write_text(large_type(size))
        started = time.process_time()
        data, locate, _ = load_file(path)
        rt = parse_request_type(data, None, str(path), locate)
        assert len(rt.states) == size + 1 and len(rt.fields) == size
        return time.process_time() - started

    small, large = cpu_seconds(200), cpu_seconds(2_000)
    assert large < 20 * small + 0.5  # ten times the size: linear is 10x, quadratic would be 100x
