"""`loket worker`: its jobs (the sweep, the outbox delivery) on a schedule until stopped.

APScheduler 3.11 with jobs in a memory job store, given in code: a 3.x job store must never
be shared between processes. All the safety between several workers lives in the database
(unique escalation keys, claimed outbox leases, `SKIP LOCKED`), so any number of workers may
run side by side.

Each job has an executor of its own, so a delivery waiting on a slow mail server never holds
up a sweep. A run that comes due while the job's last run is still going is skipped and
reported ("sweep still running after 75 s; this run skipped"). SIGTERM and SIGINT set the
stop event the jobs are given (delivery ends between messages, or its SMTP exchange under
way), stop the scheduler at once and give running jobs :data:`GRACE` seconds to finish;
a job still running then is left behind (its threads are daemons, so the process exits, and
whatever it held in the database is rolled back or its leases run out).

The jobs come from the caller (the command line wires the notifications' delivery in), so
the engine runs whatever is scheduled without knowing how mail is sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from apscheduler.executors.base import BaseExecutor, run_job

if TYPE_CHECKING:
    from apscheduler.job import Job as ScheduledJob
    from apscheduler.schedulers.base import BaseScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    from engine.app.service import Loket

GRACE: Final = 5.0
"""Seconds a stopping worker waits for its running jobs before it leaves them behind."""


@dataclass(frozen=True)
class Job:
    """Something the worker does over and over: ``run(*args)`` every ``every``.

    A job that can take long should accept a stop event among its ``args`` (the one given to
    :func:`run_worker`) and return soon after it is set.
    """

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


class Running:
    """Which jobs are running, since when (``time.monotonic()``)."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def start(self, job_id: str) -> None:
        with self._lock:
            self._since[job_id] = time.monotonic()

    def end(self, job_id: str) -> None:
        with self._lock:
            self._since.pop(job_id, None)
            self._idle.notify_all()

    def since(self, job_id: str) -> float | None:
        with self._lock:
            return self._since.get(job_id)

    def wait_idle(self, timeout: float) -> list[str]:
        """Wait until no job runs, at most ``timeout`` seconds; the jobs still running."""
        with self._lock:
            self._idle.wait_for(lambda: not self._since, timeout)
            return sorted(self._since)


class DaemonThreadExecutor(BaseExecutor):
    """Runs every run of a job in a daemon thread of its own.

    APScheduler's thread pool joins its threads when the interpreter exits, so one hung job
    would keep a stopped worker alive; a daemon thread is left behind instead.
    """

    def _do_submit_job(self, job: ScheduledJob, run_times: list[dt.datetime]) -> None:
        def run() -> None:
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except BaseException:
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

        threading.Thread(target=run, name=f"worker-{job.id}", daemon=True).start()


def build_scheduler(jobs: Sequence[Job], echo: Callable[[str], None],
                    running: Running | None = None) -> BlockingScheduler:
    """The worker's scheduler with its jobs, each on its own executor, not yet started.

    A run that comes due while the last one still runs is skipped (max_instances=1) and
    reported; runs missed while the machine slept collapse into one (coalesce).
    """
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.schedulers.blocking import BlockingScheduler

    running = running or Running()
    scheduler = BlockingScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={job.id: DaemonThreadExecutor() for job in jobs},
        timezone=dt.UTC,
    )
    # Given to each job rather than as job_defaults, which APScheduler applies only at start.
    options = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 60,
               "next_run_time": dt.datetime.now(dt.UTC)}
    for job in jobs:
        scheduler.add_job(_guard(job, echo, running), "interval", seconds=job.every.total_seconds(),
                          args=list(job.args), id=job.id, executor=job.id, **options)

    def overrun(event: Any) -> None:
        since = running.since(event.job_id)
        took = f" after {time.monotonic() - since:.0f} s" if since is not None else ""
        echo(f"worker: {event.job_id} still running{took}; this run skipped")

    scheduler.add_listener(overrun, EVENT_JOB_MAX_INSTANCES)
    # The line above says it; APScheduler's own warning would say it again.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    return scheduler


def run_worker(jobs: Sequence[Job], echo: Callable[[str], None], stop: threading.Event | None = None,
               grace: float = GRACE) -> None:
    """Run ``jobs`` until SIGTERM or SIGINT; ``stop`` is set then, for the jobs to see."""
    from apscheduler.events import EVENT_SCHEDULER_STARTED

    stop = stop or threading.Event()
    running = Running()
    scheduler = build_scheduler(jobs, echo, running)

    def on_start(event: Any) -> None:
        # Only a running scheduler can be shut down: until now, a signal keeps its default
        # effect (Ctrl-C interrupts the start-up) instead of being lost.
        handler = stopper(scheduler, echo, stop)
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    scheduler.add_listener(on_start, EVENT_SCHEDULER_STARTED)
    echo(f"worker: {', '.join(f'{job.doing} every {job.every}' for job in jobs)}; stop with Ctrl-C")
    scheduler.start()
    left = running.wait_idle(grace)
    if left:
        echo(f"worker: {', '.join(left)} still running after {grace:g} s; not waiting for it")
    # Stopped: a signal that follows (SIGTERM, then Ctrl-C) must not turn the exit under way
    # into a death by signal once the handlers are gone.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    echo("worker: stopped")


def stopper(scheduler: BaseScheduler, echo: Callable[[str], None],
            stop: threading.Event | None = None) -> Callable[[int, Any], None]:
    """The SIGTERM/SIGINT handler: set ``stop`` and stop the scheduler without waiting for
    the running jobs (:func:`run_worker` gives them their grace).

    A second signal while the worker stops (Ctrl-C twice, or SIGTERM and then SIGINT) is
    ignored: shutting down a scheduler that is already stopping raises, and that error would
    turn the clean stop under way into "Error: unexpected SchedulerNotRunningError", exit 70.
    """

    def handle(signum: int, frame: Any) -> None:
        if not scheduler.running:
            return
        echo(f"worker: {signal.Signals(signum).name} received, stopping")
        if stop is not None:
            stop.set()
        scheduler.shutdown(wait=False)

    return handle


def _guard(job: Job, echo: Callable[[str], None], running: Running) -> Callable[..., None]:
    """A failing job is reported and tried again at its next run, not fatal to the worker."""

    def run(*args: Any) -> None:
        running.start(job.id)
        try:
            job.run(*args)
        except Exception as exc:
            echo(f"worker: {job.id} failed: {type(exc).__name__}: {exc}")
        finally:
            running.end(job.id)

    run.__name__ = job.run.__name__
    return run
