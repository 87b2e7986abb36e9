"""`loket worker`: its jobs (the sweep, the outbox delivery) on a schedule until stopped.

APScheduler 3.11 with jobs in a memory job store, given in code: a 3.x job store must never
be shared between processes. All the safety between several workers lives in the database
(unique escalation keys, claimed outbox leases, `SKIP LOCKED`), so any number of workers may
run side by side. SIGTERM and SIGINT stop the scheduler after the running job.

The jobs come from the caller (the command line wires the notifications' delivery in), so
the engine runs whatever is scheduled without knowing how mail is sent.
"""

from __future__ import annotations

import datetime as dt
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    from engine.app.service import Loket


@dataclass(frozen=True)
class Job:
    """Something the worker does over and over: ``run(*args)`` every ``every``."""

    id: str
    doing: str
    """What the worker says it does, e.g. ``sweeping`` (as in "sweeping every 0:01:00")."""
    every: dt.timedelta
    run: Callable[..., None]
    args: tuple[Any, ...] = ()


def sweep_job(loket: Loket, echo: Callable[[str], None]) -> None:
    from engine.app.sweep import sweep

    loket.refresh()
    result = sweep(loket)
    if result.fired:
        echo(f"sweep: {result.checked} checked, {len(result.fired)} fired")


def build_scheduler(jobs: Sequence[Job], echo: Callable[[str], None]) -> BlockingScheduler:
    """The worker's scheduler with its jobs, not yet started.

    A run that comes due while the last one still runs is dropped (max_instances=1), runs
    missed while a sweep took long collapse into one (coalesce), and one thread runs them
    all: the jobs share the loket's caches.
    """
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(1)},
        timezone=dt.UTC,
    )
    # Given to each job rather than as job_defaults, which APScheduler applies only at start.
    options = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 60,
               "next_run_time": dt.datetime.now(dt.UTC)}
    for job in jobs:
        scheduler.add_job(_guard(job.run, echo), "interval", seconds=job.every.total_seconds(),
                          args=list(job.args), id=job.id, **options)
    return scheduler


def run_worker(jobs: Sequence[Job], echo: Callable[[str], None]) -> None:
    from apscheduler.events import EVENT_SCHEDULER_STARTED

    scheduler = build_scheduler(jobs, echo)

    def on_start(event: Any) -> None:
        # Only a running scheduler can be shut down: until now, a signal keeps its default
        # effect (Ctrl-C interrupts the start-up) instead of being lost.
        handler = stopper(scheduler, echo)
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    scheduler.add_listener(on_start, EVENT_SCHEDULER_STARTED)
    echo(f"worker: {', '.join(f'{job.doing} every {job.every}' for job in jobs)}; stop with Ctrl-C")
    scheduler.start()
    echo("worker: stopped")


def stopper(scheduler: BaseScheduler, echo: Callable[[str], None]) -> Callable[[int, Any], None]:
    """The SIGTERM/SIGINT handler: stop the scheduler once the running job has finished.

    A second signal while the worker stops (Ctrl-C twice, or SIGTERM and then SIGINT) is
    ignored: shutting down a scheduler that is already stopping raises, and that error would
    turn the clean stop under way into "Error: unexpected SchedulerNotRunningError", exit 70.
    """

    def stop(signum: int, frame: Any) -> None:
        if not scheduler.running:
            return
        echo(f"worker: {signal.Signals(signum).name} received, stopping")
        scheduler.shutdown(wait=True)

    return stop


def _guard(job: Callable[..., None], echo: Callable[[str], None]) -> Callable[..., None]:
    """A failing job is reported and tried again at its next run, not fatal to the worker."""

    def run(*args: Any) -> None:
        try:
            job(*args)
        except Exception as exc:
            echo(f"worker: {job.__name__} failed: {type(exc).__name__}: {exc}")

    run.__name__ = job.__name__
    return run
