"""One sweep in its own process, started on a signal so that several start at the same moment.

    python tests/helpers/sweeper.py URL NOW BATCH

Opens the database and reads the definitions, prints `ready`, waits for a line on stdin,
then runs `sweep(loket, NOW, batch=BATCH)` and prints its `escalate --json` result.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.store.db import open_engine


def main(url: str, now: str, batch: str) -> None:
    at = dt.datetime.fromisoformat(now)
    loket = Loket(open_engine(url), FixedClock(at))
    loket.calendar()
    loket.latest_types()
    print("ready", flush=True)
    sys.stdin.readline()
    result = sweep(loket, at, batch=int(batch))
    print(json.dumps(result.as_json()), flush=True)
    loket.engine.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:])
