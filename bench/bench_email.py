"""Escalation email throughput: render and queue, then deliver over SMTP, same run.

1. queue: open cases and sweep once, late enough that each fires two rungs; the sweep writes
   the `escalated` events and the outbox rows (the time of opening the cases is not counted);
2. render: every row's template context, its three templates and its MIME message, each row
   as a single email; then the same rows as the digests delivery makes of them (one email for
   up to 50 firings of one reader), counted in firings;
3. delivery: `deliver()` end to end (claim with a lease, render, send, record) into a local
   aiosmtpd sink whose handler only counts, one SMTP connection per run; the rows go out in
   digests, so the rate is in firings (outbox rows) per second;
4. the transport alone, on the messages of step 2: batches over one connection each, and as
   the baseline one connection per message. The ratio is what batching buys.

Where the render time goes (cProfile of `render_all`, 1,000 single escalation emails, issue
16's second step): the three Jinja templates about 40% (the HTML one most: ~50 escaped values
in a page of inline-styled tables), `build_message` about 30% (quoted-printable of the two
bodies two thirds of it, the rest the per-message headers and the three message objects), the
batch queries (events, type facts) and the contexts about 20%, checking the context is plain
data under a tenth. CPU rate about 3x that of the step before (≈ 600 → ≈ 1,900 msg/s in CPU
time on the 2-core machine, on the same 2,000 rows).

Before this step the Jinja templates were about half: every render went through the bounded
sandbox (`notifications.bounds`: a check on every value, filter, call and output), which is
there for the operator's override folder; the packaged templates now render in a plain
environment, compiled once per process, with the same options and the same output (a
test renders every kind both ways). `build_message` was about a third: parsing the
per-message headers (Subject, To, Message-ID, the multipart Content-Type) and `quoprimime`
quoting one character at a time; the headers are now written as folded RFC 5322/2047 text
(the standard library's parser reads back the same values; unusual ones still go through the
parser), and quoted-printable escapes one kind of byte at a time with `str.replace`, writing
the same bytes as `quoprimime`. The batch's event windows were a hundred SQLAlchemy
expressions per query; they are one text condition with numbered parameters. Nothing of a
recipient is kept between messages (no cache holds a name, an address or a subject).

Issue 16's third step (the 2,000 msg/s target, 2,000 rows, SQLite): the batch queries were a
fifth of the render time. The events of a batch's windows are now read by one statement per
number of windows, made once per process, its values bound at execution (binding three hundred
values into a text clause, and SQLAlchemy's cache key over them, cost more than the query), and
only the columns an email shows (the chain's digests and salts were decoded as JSON to be
dropped): ~110-150 µs → ~45 µs per message. Jinja copied each template's globals, a ChainMap,
into every render's context (~7 µs per template, three per email); the bundled environment
now gives them as a plain dict. Same bytes out (tests/test_message_build.py,
tests/test_message_fast_path.py unchanged). What is left, per message at best (CPU): batch
queries ~45 µs, contexts ~55, the three templates ~145 (HTML escaping of ~60 values a good
part), MIME ~150 (quoted-printable of the two bodies about half). Measured on the 2-core machine
under a load average of 3-6 from other work, four runs alternated with a `git archive` of the
branch point, best of 3 rounds each: CPU rate 2,811 / 3,089 / 3,583 / 3,160 msg/s (branch
point 2,554 / 2,607 / 2,775 / 2,965 in the same runs), wall rate, which that load cuts,
1,369 / 1,933 / 3,565 / 2,491 (branch point 1,647 / 1,696 / 1,818 / 2,838). About 10-20% more
emails per CPU second; the run-to-run spread on this machine is as large as the gain, so
compare runs made side by side.

The floor is, as before, the transport alone with one connection per message (the last
line), and the ratio printed is what batching buys.

The sink runs in a thread of this process, so its work shares the interpreter with the
client's: the figures are a floor for a real mail relay on another machine.

    python bench/bench_email.py [--n 10000] [--batch 100] [--pg] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiosmtpd.controller import Controller  # noqa: E402
from common import scratch_postgres  # noqa: E402

from engine.app.bundled import sample_paths  # noqa: E402
from engine.app.clock import FixedClock  # noqa: E402
from engine.app.service import Loket  # noqa: E402
from engine.app.sweep import sweep  # noqa: E402
from engine.store.db import migrate, open_engine  # noqa: E402
from notifications.compose import email_context, recent_events, type_facts  # noqa: E402
from notifications.context import DIGEST  # noqa: E402
from notifications.delivery import MailSettings, deliver  # noqa: E402
from notifications.digest import digest_context, groups, message_key  # noqa: E402
from notifications.message import build_message, message_id_for  # noqa: E402
from notifications.render import Renderer  # noqa: E402
from notifications.requeue import list_outbox  # noqa: E402
from notifications.transports import SmtpTransport  # noqa: E402

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)  # a Monday
FRIDAY = dt.datetime(2026, 3, 6, 9, 0, tzinfo=dt.UTC)  # a melding's rungs 1 and 2 are due
SENDER = "Wijkloket Gemeente Voorbeeld <wijkloket@gemeente.example>"


class CountingHandler:
    """An aiosmtpd handler that accepts every message and only counts."""

    def __init__(self) -> None:
        self.messages = 0
        self.sessions = 0
        self._lock = threading.Lock()

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        with self._lock:
            self.sessions += 1
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.messages += 1
        return "250 2.0.0 OK"

    def reset(self) -> None:
        with self._lock:
            self.messages = self.sessions = 0


def free_port() -> int:
    """aiosmtpd's Controller cannot take port 0: it connects back to the port it was given."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def sink() -> Iterator[tuple[CountingHandler, SmtpTransport]]:
    handler = CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            server_hostname="sink.test")
    controller.start()
    try:
        yield handler, SmtpTransport("127.0.0.1", controller.port, timeout=30)
    finally:
        controller.stop()


@contextmanager
def database(pg: bool) -> Iterator[str]:
    if not pg:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    with scratch_postgres() as url:
        yield url


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:9,.0f} msg/s  ({count:,} in {seconds:6.2f} s)"


def render_all(loket: Loket, rows: list[dict[str, Any]], domain: str,
               batch: int) -> list[EmailMessage]:
    """What `deliver()` does before sending: a batch's events in one query, then its emails.

    The messages are kept for the transport runs, which `deliver()` never does: each rendered
    batch is frozen out of the garbage collector's sight, or rescanning the growing pile
    would be counted as rendering time.
    """
    renderers = {language: Renderer(language) for language in ("nl", "en")}
    messages = []
    for first in range(0, len(rows), batch):
        chunk = rows[first:first + batch]
        for row, events, facts in zip(chunk, recent_events(loket, chunk), type_facts(loket, chunk), strict=True):
            context = email_context(loket, row, events, facts)
            rendered = renderers[row["language"]].render(row["kind"], context)
            messages.append(build_message(
                rendered, sender=SENDER, to=row["to_email"], to_name=row["to_name"],
                message_id=message_id_for(row["key"], domain), date=FRIDAY,
            ))
        gc.freeze()
    return messages


def render_digests(loket: Loket, rows: list[dict[str, Any]], domain: str, batch: int) -> int:
    """What `deliver()` makes of the rows: each batch's digests (contexts as for single emails,
    then one digest template and one MIME message per reader); how many emails."""
    renderers = {language: Renderer(language) for language in ("nl", "en")}
    emails = 0
    for first in range(0, len(rows), batch):
        chunk = rows[first:first + batch]
        contexts = {id(row): email_context(loket, row, events, facts) for row, events, facts
                    in zip(chunk, recent_events(loket, chunk), type_facts(loket, chunk), strict=True)}
        for group in groups(chunk):
            data = digest_context(group, [contexts[id(row)] for row in group])
            rendered = renderers[group[0]["language"]].render(DIGEST, data)
            build_message(rendered, sender=SENDER, to=group[0]["to_email"], to_name=group[0]["to_name"],
                          message_id=message_id_for(message_key(group), domain), date=FRIDAY)
            emails += 1
    return emails


def send_in_batches(transport: SmtpTransport, messages: list[EmailMessage], size: int) -> None:
    for first in range(0, len(messages), size):
        results = transport.send(messages[first:first + size])
        if not all(result.ok for result in results):
            raise SystemExit(f"the sink refused a message: {results}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="emails (two per case)")
    parser.add_argument("--batch", type=int, default=100, help="messages per SMTP connection")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--rounds", type=int, default=3,
                        help="render the rows this many times; the best round counts (a shared machine)")
    args = parser.parse_args()
    cases = math.ceil(args.n / 2)

    with database(args.pg) as url:
        engine = open_engine(url, create=True)
        migrate(engine)
        clock = FixedClock(START)
        loket = Loket(engine, clock)
        org, types = sample_paths()
        loket.load_organisation(org)
        loket.load_request_types(types)
        print(f"database: {engine.dialect.name}; {cases:,} meldingen → {2 * cases:,} escalation"
              f" emails; SMTP batches of {args.batch}")

        started = time.perf_counter()
        for number in range(cases):
            loket.new_case("melding", [f"omschrijving=Lantaarnpaal {number} kapot",
                                       "locatie=Lindelaan"], actor="c.devries")
        print(f"(setup: {cases:,} cases opened in {time.perf_counter() - started:.1f} s)")

        clock.set(FRIDAY)
        started = time.perf_counter()
        fired = sweep(loket)
        queued = time.perf_counter() - started
        rows = list_outbox(loket)
        count = len(rows)
        assert count == len(fired.fired) == 2 * cases, (count, len(fired.fired))

        settings = MailSettings(sender=SENDER, transport=SmtpTransport("unused", 25),
                                template_dir=None)
        walls, cpus = [], []
        for _ in range(args.rounds):
            messages = []  # the previous round's messages go before the next is made
            started, cpu = time.perf_counter(), time.process_time()
            messages = render_all(loket, rows, settings.domain, args.batch)
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
        rendered, rendered_cpu = min(walls), min(cpus)

        started = time.perf_counter()
        digests = render_digests(loket, rows, settings.domain, args.batch)
        digested = time.perf_counter() - started

        print(f"queue  (sweep → outbox rows)          {rate(count, queued)}")
        print(f"render (context, templates, MIME)     {rate(count, rendered)}  [best of {args.rounds}]")
        print(f"  in CPU time of this process         {rate(count, rendered_cpu)}  [best of {args.rounds}]")
        print(f"  first round (templates compiled)    {rate(count, walls[0])}  [CPU {count / cpus[0]:,.0f} msg/s]")
        print(f"render + queue                        {rate(count, queued + rendered)}")
        print(f"render digests (firings)              {rate(count, digested)}  [{digests} emails]")

        with sink() as (handler, transport):
            settings = MailSettings(sender=SENDER, transport=transport, template_dir=None)
            started = time.perf_counter()
            report = deliver(loket, settings, batch=args.batch)
            delivered = time.perf_counter() - started
            assert report.sent == count and report.emails == handler.messages, (report, handler.messages)
            assert handler.sessions == 1, handler.sessions
            print(f"delivery: deliver(), digests (firings){rate(count, delivered)}"
                  f"  [{handler.messages} emails, {handler.sessions} connection]")

            handler.reset()
            started = time.perf_counter()
            send_in_batches(transport, messages, args.batch)
            batched = time.perf_counter() - started
            assert handler.messages == count and handler.sessions == math.ceil(count / args.batch)
            print(f"SMTP only, 1 connection per batch     {rate(count, batched)}")

            handler.reset()
            started = time.perf_counter()
            send_in_batches(transport, messages, 1)
            single = time.perf_counter() - started
            assert handler.messages == count and handler.sessions == count
            print(f"SMTP only, 1 connection per message   {rate(count, single)}  (baseline)")

        print(f"batching: {single / batched:.2f}x the throughput of one connection per message")
        engine.dispose()


if __name__ == "__main__":
    main()
