"""`loket worker`: sweeps and outbox delivery on a schedule until stopped.

APScheduler 3.11 with jobs in a memory job store, defined here in code: a 3.x job store must
never be shared between processes. All the safety between several workers lives in the
database (unique escalation keys, claimed outbox leases, `SKIP LOCKED`), so any number of
workers may run side by side. SIGTERM and SIGINT stop the scheduler after the running job.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notifications.outbox import MailSettings

    from engine.service import Loket

log = logging.getLogger("loket.worker")


def sweep_job(loket: Loket, echo: Callable[[str], None]) -> None:
    from engine.sweep import sweep

    loket.refresh()
    result = sweep(loket)
    if result.fired:
        echo(f"sweep: {result.checked} checked, {len(result.fired)} fired")


def deliver_job(loket: Loket, settings: MailSettings, echo: Callable[[str], None]) -> None:
    from notifications.outbox import deliver

    report = deliver(loket, settings)
    if report.sent or report.failed or report.retrying:
        echo(f"outbox: {report.sent} sent, {report.retrying} to retry, {report.failed} failed")


def run_worker(
    loket: Loket,
    settings: MailSettings,
    sweep_every: dt.timedelta,
    deliver_every: dt.timedelta,
    echo: Callable[[str], None],
) -> None:
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(
        executors={"default": ThreadPoolExecutor(1)},  # one job at a time: they share caches
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        timezone=dt.UTC,
    )
    first = dt.datetime.now(dt.UTC)
    scheduler.add_job(_guard(sweep_job, echo), "interval", seconds=sweep_every.total_seconds(),
                      args=[loket, echo], id="sweep", next_run_time=first)
    scheduler.add_job(_guard(deliver_job, echo), "interval", seconds=deliver_every.total_seconds(),
                      args=[loket, settings, echo], id="deliver", next_run_time=first)

    def stop(signum: int, frame: Any) -> None:
        echo(f"worker: {signal.Signals(signum).name} received, stopping")
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    echo(f"worker: sweeping every {sweep_every}, delivering every {deliver_every}; stop with Ctrl-C")
    scheduler.start()
    echo("worker: stopped")


def _guard(job: Callable[..., None], echo: Callable[[str], None]) -> Callable[..., None]:
    """A failing job is reported and tried again at its next run, not fatal to the worker."""

    def run(*args: Any) -> None:
        try:
            job(*args)
        except Exception as exc:
            echo(f"worker: {job.__name__} failed: {type(exc).__name__}: {exc}")

    run.__name__ = job.__name__
    return run
