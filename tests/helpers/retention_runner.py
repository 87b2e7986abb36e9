"""One retention run in its own process, to be killed half-way.

    python tests/helpers/retention_runner.py URL NOW BATCH OPERATOR

Opens the database, prints `ready`, waits for a line on stdin, then runs `retention.run` in
batches of BATCH, printing how many cases it has destroyed after every batch (and pausing a
moment), and `done`.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.app import retention
from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.store import retention as store
from engine.store.db import open_engine


def main(url: str, now: str, batch: str, operator: str) -> None:
    loket = Loket(open_engine(url), FixedClock(dt.datetime.fromisoformat(now)))
    loket.latest_types()
    store.BATCH = int(batch)
    print("ready", flush=True)
    sys.stdin.readline()
    def progress(done: int) -> None:
        print(done, flush=True)
        time.sleep(0.02)  # a run long enough to be killed half-way however busy the machine

    retention.run(loket, "selectielijst", by=loket.identity(operator), progress=progress)
    print("done", flush=True)
    loket.engine.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:])
