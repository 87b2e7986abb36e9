"""`loket worker`: sweeps and outbox delivery on a schedule until stopped.

APScheduler 3.11 with jobs in a memory job store, defined here in code: a 3.x job store must
never be shared between processes. All the safety between several workers lives in the
database (unique escalation keys, claimed outbox leases, `SKIP LOCKED`), so any number of
workers may run side by side. SIGTERM and SIGINT stop the scheduler after the running job.
"""

from __future__ import annotations

import datetime as dt
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    from engine.app.service import Loket
    from notifications.outbox import MailSettings


def sweep_job(loket: Loket, echo: Callable[[str], None]) -> None:
    from engine.app.sweep import sweep

    loket.refresh()
    result = sweep(loket)
    if result.fired:
        echo(f"sweep: {result.checked} checked, {len(result.fired)} fired")


def deliver_job(loket: Loket, settings: MailSettings, echo: Callable[[str], None]) -> None:
    from notifications.outbox import deliver

    report = deliver(loket, settings)
    if report.sent or report.failed or report.retrying:
        echo(f"outbox: {report.sent} sent, {report.retrying} to retry, {report.failed} failed")


def build_scheduler(
    loket: Loket,
    settings: MailSettings,
    sweep_every: dt.timedelta,
    deliver_every: dt.timedelta,
    echo: Callable[[str], None],
) -> BlockingScheduler:
    """The worker's scheduler with its two jobs, not yet started.

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
    scheduler.add_job(_guard(sweep_job, echo), "interval", seconds=sweep_every.total_seconds(),
                      args=[loket, echo], id="sweep", **options)
    scheduler.add_job(_guard(deliver_job, echo), "interval", seconds=deliver_every.total_seconds(),
                      args=[loket, settings, echo], id="deliver", **options)
    return scheduler


def run_worker(
    loket: Loket,
    settings: MailSettings,
    sweep_every: dt.timedelta,
    deliver_every: dt.timedelta,
    echo: Callable[[str], None],
) -> None:
    from apscheduler.events import EVENT_SCHEDULER_STARTED

    scheduler = build_scheduler(loket, settings, sweep_every, deliver_every, echo)

    def on_start(event: Any) -> None:
        # Only a running scheduler can be shut down: until now, a signal keeps its default
        # effect (Ctrl-C interrupts the start-up) instead of being lost.
        handler = stopper(scheduler, echo)
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    scheduler.add_listener(on_start, EVENT_SCHEDULER_STARTED)
    echo(f"worker: sweeping every {sweep_every}, delivering every {deliver_every};"
         " stop with Ctrl-C")
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
