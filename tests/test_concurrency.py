"""Civil servants working on the same cases at once (SPEC §9), on SQLite and PostgreSQL.

Four processes run the real `loket` command (`cli.main`) against one database: each opens
three new cases, then walks the same twenty cases through `in_behandeling` and
`naar_besluit`, each giving its own amount. Every call must end in exit 0, 1 (the step is no
longer allowed: someone else took it) or 3 (the case changed meanwhile) — never anything else;
afterwards every case holds exactly the events of the calls that succeeded, the winner's data,
and one unbroken chain.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import re
from collections import defaultdict
from typing import Any

from engine.app.service import Loket
from engine.app.verify import verify

WORKERS = ["c.devries", "l.mulder", "t.visser", "b.bakker"]  # all hold a role in wijkteam
CASES = 20
NEW_PER_WORKER = 3


def _loket(url: str, actor: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        import cli

        try:
            cli.main(["--db", url, "--as", actor, *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return code, out.getvalue(), err.getvalue()


def _work(url: str, index: int, refs: list[str], start: Any, results: Any) -> None:
    """One civil servant: open some cases, then take every case as far as it goes."""
    import cli  # noqa: F401  (imported before the start, so every worker begins at once)

    actor = WORKERS[index]
    amount = str(100 * (index + 1))
    order = refs if index % 2 == 0 else list(reversed(refs))
    calls: list[tuple[str, str, int, str]] = []
    start.wait()
    for _ in range(NEW_PER_WORKER):
        new = [
            "case",
            "new",
            "melding",
            "--data=omschrijving=Lamp stuk",
            "--data=locatie=Dorpsstraat",
        ]
        code, out, err = _loket(url, actor, *new, "--json")
        calls.append((json.loads(out)["ref"] if code == 0 else "", "new", code, err))
    for ref in order:
        for trigger, extra in (
            ("in_behandeling", []),
            ("naar_besluit", ["--data", f"amount={amount}"]),
        ):
            code, _out, err = _loket(url, actor, "case", "advance", ref, trigger, *extra)
            calls.append((ref, trigger, code, err))
    results.put((actor, amount, calls))


def test_concurrent_advances_lose_nothing(loket: Loket, db_url: str) -> None:
    refs = [
        loket.new_case("bewonersinitiatief", [f"title=Initiatief {i}"], actor="c.devries").ref
        for i in range(CASES)
    ]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(WORKERS))
    results = context.Queue()
    processes = [
        context.Process(target=_work, args=(db_url, i, refs, start, results))
        for i in range(len(WORKERS))
    ]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(timeout=30)
        assert p.exitcode == 0

    amount_of = {actor: amount for actor, amount, _ in outcomes}
    won: dict[str, list[tuple[str, str]]] = defaultdict(list)
    new_refs = []
    codes: dict[int, int] = defaultdict(int)
    for actor, _amount, calls in outcomes:
        for ref, trigger, code, err in calls:
            codes[code] += 1
            assert "Traceback" not in err
            if trigger == "new":
                assert code == 0, err
                new_refs.append(ref)
            elif code == 0:
                assert err == ""
                won[ref].append((trigger, actor))
            elif code == 1:
                assert re.fullmatch(
                    rf"Error: '{trigger}' is not allowed in state '\w+' .*\n", err
                ), err
            else:
                assert code == 3, err
                assert (
                    err
                    == f"Error: {ref} was changed by someone else meanwhile; nothing was written\n"
                )

    # every opened case got its own number
    numbers = sorted(int(ref.rsplit("-", 1)[1]) for ref in new_refs)
    assert numbers == list(range(1, len(WORKERS) * NEW_PER_WORKER + 1))
    assert len({ref.rsplit("-", 1)[0] for ref in new_refs}) == 1

    for ref in refs:
        steps = sorted(won[ref])
        assert [trigger for trigger, _ in steps] == ["in_behandeling", "naar_besluit"], (ref, steps)
        case, history = loket.history(ref)
        recorded = sorted(
            (e["trigger"], e["actor"]) for e in history if e["action"] == "transition"
        )
        assert recorded == steps
        assert [e["seq"] for e in history] == [1, 2, 3]
        winner = dict(steps)["naar_besluit"]
        assert (case.state, case.data["amount"], case.version, case.last_seq) == (
            "besluit",
            amount_of[winner],
            4,
            3,
        )
    result = verify(loket)
    assert (result.ok, result.failure) == (True, None)
    assert result.events == CASES * 3 + len(new_refs)
    assert codes[0] == 2 * CASES + len(new_refs)
