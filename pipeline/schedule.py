"""Scheduled mode: the jobs of `pipeline schedule`, run by APScheduler 3.

The only module that imports apscheduler. Jobs come from ``[schedule]``:

- ``update``: fetch (feeds, then [[imap]] mailboxes), ingest, tag and cluster, every ``interval_minutes``;
- ``daily-digest`` and ``weekly-digest``: tag, cluster, then the digest of
  the window that closed most recently before the job's fire time (at 07:00
  on 14 April, the daily digest of 13 April), at their crontab times in
  ``schedule.timezone``.

Jobs coalesce (a backlog of runs becomes one), never overlap themselves and
may start late by up to ``misfire_grace`` seconds. Each job takes the
database lock (pipeline/lock.py), so it never runs beside a manual command,
and is recorded in the ``runs`` table.

Catch-up: the digests missed while the scheduler was down, or while a
digest job could not get the lock, are found from the digests recorded in the
database (not from memory): every fire time of a digest job in the last
``catch_up_days`` whose digest was never made is made once, oldest first, on
start, before each digest job and after each update job. A digest already
made is never made again by catch-up.

Delivery (``schedule.deliver`` or ``digest.email.on_digest``, with
recipients): after its digests, every job mails every due digest (closed,
recorded, not yet sent to some address: see deliver.py), so a failed send is
retried by the next job and what catch-up made is mailed too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from . import cluster as cluster_mod
from . import digest as digest_mod
from . import fetch as fetch_mod
from . import imap as imap_mod
from . import ingest as ingest_mod
from . import tag as tag_mod
from .config import Config
from .interrupt import install_signal_handlers, reset, stop_requested
from .lock import (
    LockTimeout,
    LockWaitStopped,
    StageLock,
    close_dead_runs,
    is_locked,
    lock_path,
    pid_alive,
    read_holder,
)
from .models import StepResult
from .store import Store

log = logging.getLogger(__name__)

UPDATE_JOB = "update"
DIGEST_JOBS = {"daily": "daily-digest", "weekly": "weekly-digest"}
SCHEDULER_RUN = "schedule"


class ScheduleError(Exception):
    """The [schedule] settings cannot make jobs; ``problems`` names each dotted key."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class JobSpec:
    id: str
    trigger: BaseTrigger
    period: str | None  # the digest period; None for the update job
    description: str


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def job_specs(config: Config, *, start: datetime | None = None) -> list[JobSpec]:
    """The jobs [schedule] asks for. The update job first fires at ``start`` (default: now)."""
    s = config.schedule
    tz = ZoneInfo(s.timezone)
    specs: list[JobSpec] = []
    problems: list[str] = []
    if s.interval_minutes > 0:
        steps = [name for name, on in (("fetch", s.fetch), ("ingest", s.ingest)) if on] + ["tag", "cluster"]
        specs.append(
            JobSpec(
                UPDATE_JOB,
                IntervalTrigger(minutes=s.interval_minutes, start_date=start or utcnow(), timezone=tz),
                None,
                f"every {s.interval_minutes:g} min: {', '.join(steps)}",
            )
        )
    for period, expr in (("daily", s.daily), ("weekly", s.weekly)):
        if not expr:
            continue
        try:
            trigger = CronTrigger.from_crontab(expr, timezone=tz)
        except ValueError as exc:
            problems.append(f"schedule.{period}: {exc}")
            continue
        specs.append(JobSpec(DIGEST_JOBS[period], trigger, period, f"{period} digest at {expr!r} ({s.timezone})"))
    if problems:
        raise ScheduleError(problems)
    return specs


def next_fire_times(specs: list[JobSpec], now: datetime) -> dict[str, datetime | None]:
    """When each job fires next, from ``now``."""
    return {spec.id: spec.trigger.get_next_fire_time(None, now) for spec in specs}


def fire_times(trigger: BaseTrigger, since: datetime, until: datetime, limit: int = 100_000) -> list[datetime]:
    """The fire times of ``trigger`` from ``since`` to ``until``, both included, oldest first."""
    times: list[datetime] = []
    t = trigger.get_next_fire_time(None, since)
    while t is not None and t <= until and len(times) < limit:
        times.append(t)
        t = trigger.get_next_fire_time(t, t + timedelta(seconds=1))
    return times


def missed_digests(
    times: list[datetime], made: Mapping[str, Any], key_of: Callable[[datetime], str]
) -> list[tuple[str, datetime]]:
    """The digests to make for these fire times: (key, time), one per key, oldest first.

    A key already made, or not later than the newest made one, is left alone:
    making an older digest after a newer one would repeat the newer one's items.
    When a key has several fire times, the last one counts.
    """
    newest = max(made) if made else None
    due: dict[str, datetime] = {}
    for t in sorted(times):
        key = key_of(t)
        if key in made or (newest is not None and key <= newest):
            continue
        due[key] = t
    return sorted(due.items(), key=lambda kv: kv[1])


# --- the steps the jobs run ---------------------------------------------------


def make_digest(store: Store, config: Config, period: str, key: str, when: datetime) -> StepResult:
    """The one place the scheduler calls the digest stage: the ``period`` digest ``key``, as of ``when``.

    It mails nothing: a job delivers once, after all its digests (``deliver_due``).
    """
    return digest_mod.digest_step(store, config, when, period=period, date=key, deliver=False)


def delivers(config: Config) -> bool:
    """Whether scheduled jobs mail digests: ``schedule.deliver`` or ``digest.email.on_digest``, with recipients."""
    return (config.schedule.deliver or config.digest.email.on_digest) and bool(config.digest.email.to)


def deliver_due(store: Store, config: Config, now: datetime) -> list[StepResult]:
    """Mail every due digest (closed, recorded, not yet sent to some address), when jobs deliver."""
    if not delivers(config) or stop_requested():
        return []
    from .deliver import deliver_digests

    return [deliver_digests(store, config, now)]


def job_digest_key(config: Config, period: str) -> Callable[[datetime], str]:
    """The digest a job firing at a time makes: the window that had closed most recently by then."""
    return lambda when: digest_mod.last_closed(period, when, config.digest)


def _prepare(store: Store, config: Config, now: datetime) -> list[StepResult]:
    results = [tag_mod.tag_step(store, config, now)]
    if not stop_requested():
        results.append(cluster_mod.cluster_step(store, config, now))
    return results


def missed_for(store: Store, config: Config, spec: JobSpec, now: datetime) -> list[tuple[str, datetime]]:
    """The digests of ``spec`` missed up to ``now`` (see ``missed_digests``), from the store's records."""
    assert spec.period is not None
    days = config.schedule.catch_up_days
    if days <= 0:
        return []
    times = fire_times(spec.trigger, now - timedelta(days=days), now)
    return missed_digests(times, store.digest_dates(spec.period), job_digest_key(config, spec.period))


def _make_all(store: Store, config: Config, period: str, due: list[tuple[str, datetime]]) -> list[StepResult]:
    results = []
    for key, when in due:
        if stop_requested():
            break
        results.append(make_digest(store, config, period, key, when))
    return results


def catch_up_work(spec: JobSpec, config: Config) -> Callable[[Store, datetime], list[StepResult]]:
    """Work that makes the digests of ``spec`` missed up to ``now``, each as of its own fire time, then delivers."""
    assert spec.period is not None
    period = spec.period

    def work(store: Store, now: datetime) -> list[StepResult]:
        due = missed_for(store, config, spec, now)
        results: list[StepResult] = []
        if due:
            log.info("making %d missed %s digest(s): %s", len(due), period, ", ".join(k for k, _ in due))
            results = _prepare(store, config, now) + _make_all(store, config, period, due)
        return results + deliver_due(store, config, now)

    return work


def digest_work(spec: JobSpec, config: Config) -> Callable[[Store, datetime], list[StepResult]]:
    """Work of a digest job firing now: missed earlier digests first, then the one that closed last; then delivery."""
    assert spec.period is not None
    period = spec.period

    def work(store: Store, now: datetime) -> list[StepResult]:
        target = job_digest_key(config, period)(now)
        due = [(k, t) for k, t in missed_for(store, config, spec, now) if k < target]
        if due:
            log.info("making %d missed %s digest(s) first: %s", len(due), period, ", ".join(k for k, _ in due))
        results = _prepare(store, config, now) + _make_all(store, config, period, due + [(target, now)])
        return results + deliver_due(store, config, now)

    return work


def update_work(config: Config, specs: Sequence[JobSpec] = ()) -> Callable[[Store, datetime], list[StepResult]]:
    """Work of the update job: fetch, ingest, tag, cluster; then the digests of ``specs`` missed so far
    (a digest job that gave up waiting for the lock is made here), then delivery."""
    s = config.schedule
    digest_specs = [(spec.period, spec) for spec in specs if spec.period is not None]

    def work(store: Store, now: datetime) -> list[StepResult]:
        steps: list[Callable[[], StepResult]] = []
        if s.fetch:
            steps.append(lambda: fetch_mod.fetch_sources(store, config, now))
            if config.imap:  # the [[imap]] mailboxes, after the feeds, as `pipeline fetch` does
                steps.append(lambda: imap_mod.fetch_mailboxes(store, config, now))
        if s.ingest and config.ingest.paths:
            steps.append(lambda: ingest_mod.ingest_paths(store, config, config.ingest.paths, now))
        steps += [lambda: tag_mod.tag_step(store, config, now), lambda: cluster_mod.cluster_step(store, config, now)]
        results = []
        for step in steps:
            if stop_requested():
                break
            results.append(step())
        for period, spec in digest_specs:
            due = missed_for(store, config, spec, now)
            if due and not stop_requested():
                log.info("making %d missed %s digest(s): %s", len(due), period, ", ".join(k for k, _ in due))
                results += _make_all(store, config, period, due)
        return results + deliver_due(store, config, now)

    return work


# --- running a job ----------------------------------------------------------------


def run_job(
    config: Config,
    command: str,
    work: Callable[[Store, datetime], list[StepResult]],
    *,
    clock: Callable[[], datetime] = utcnow,
    own_run: int | None = None,
) -> str:
    """Run one job under the database lock, recorded in ``runs``; return its status.

    A failure is logged and recorded, never raised: the scheduler keeps going.
    """
    if stop_requested():
        return "skipped"
    lock = StageLock(lock_path(config.store.path), command=command, timeout=config.schedule.lock_timeout)
    try:
        lock.acquire()
    except LockWaitStopped:
        return "skipped"
    except LockTimeout as exc:
        log.error("%s not run: %s", command, exc)
        with Store(config.store.path) as store:
            run_id = store.start_run(command, clock())
            store.finish_run(run_id, now=clock(), status="failed", counts={}, problems=[str(exc)])
        return "failed"
    with lock, Store(config.store.path) as store:
        store.sync_sources(config.sources)
        now = clock()
        close_dead_runs(store, now, own=own_run)
        run_id = store.start_run(command, now)
        try:
            results = work(store, now)
        except Exception as exc:  # noqa: BLE001 - one failed job must not stop the scheduler
            log.error("%s failed: %s: %s", command, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            store.finish_run(run_id, now=clock(), status="failed", counts={}, problems=[f"{type(exc).__name__}: {exc}"])
            return "failed"
        problems = [str(p) for r in results for p in r.problems]
        counts: dict[str, Any] = {}
        for r in results:
            for k, v in r.counts.items():
                counts[f"{r.stage}.{k}"] = counts.get(f"{r.stage}.{k}", 0) + v
        status = "interrupted" if stop_requested() else "partial" if problems else "ok"
        store.finish_run(run_id, now=clock(), status=status, counts=counts, problems=problems)
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if v) or "nothing to do"
    log.info("%s %s: %s", command, status, summary)
    return status


# --- the scheduler ------------------------------------------------------------------


def build_scheduler(config: Config, specs: list[JobSpec], *, own_run: int | None = None) -> BlockingScheduler:
    """A BlockingScheduler holding the jobs of ``specs`` (not started)."""
    s = config.schedule
    scheduler = BlockingScheduler(
        timezone=ZoneInfo(s.timezone),
        executors={"default": ThreadPoolExecutor(max_workers=2)},
    )
    for spec in specs:
        work = update_work(config, specs) if spec.period is None else digest_work(spec, config)
        # The update job runs once at start, then at its interval; digest jobs at their times.
        first = {"next_run_time": utcnow()} if spec.period is None else {}
        scheduler.add_job(
            run_job,
            trigger=spec.trigger,
            args=(config, spec.id, work),
            kwargs={"own_run": own_run},
            id=spec.id,
            name=spec.description,
            replace_existing=True,
            coalesce=True,  # a backlog of missed runs becomes one run
            max_instances=1,  # a job never overlaps itself
            misfire_grace_time=s.misfire_grace,
            **first,
        )
    return scheduler


def catch_up(config: Config, specs: list[JobSpec], *, clock: Callable[[], datetime] = utcnow,
             own_run: int | None = None) -> list[str]:
    """Make the digests missed while the scheduler was down; return each job's status."""
    return [
        run_job(config, spec.id, catch_up_work(spec, config), clock=clock, own_run=own_run)
        for spec in specs
        if spec.period is not None and config.schedule.catch_up_days > 0
    ]


def run_scheduler(config: Config, *, clock: Callable[[], datetime] = utcnow) -> None:
    """Catch up, then run the jobs until SIGTERM or SIGINT (a second one exits at once)."""
    specs = job_specs(config)
    reset()
    started: dict[str, BlockingScheduler] = {}

    def stop_scheduler() -> None:
        def stopper() -> None:
            for _ in range(100):  # a signal just before start(): wait until it runs
                scheduler = started.get("scheduler")
                if scheduler is not None and scheduler.running:
                    with suppress(SchedulerNotRunningError):
                        scheduler.shutdown(wait=True)  # the running job finishes its current input
                    return
                time.sleep(0.05)

        threading.Thread(target=stopper, name="stop-scheduler", daemon=True).start()

    # One scheduler per database: it holds its own lock (not the stage lock) while it lives.
    alone = StageLock(scheduler_lock_path(config), command=SCHEDULER_RUN, timeout=0)
    try:
        alone.acquire()
    except LockTimeout:
        holder = read_holder(alone.path)
        raise ScheduleError(
            [f"`pipeline schedule` is already running for {config.store.path}"
             + (f" ({holder.describe()})" if holder else "")]
        ) from None
    install_signal_handlers(stop_scheduler)
    with Store(config.store.path) as store:  # no stage lock: the scheduler itself changes nothing
        own_run = store.start_run(SCHEDULER_RUN, clock())
    log.info("scheduler started (run #%d): %s", own_run, "; ".join(f"{s.id} {s.description}" for s in specs))
    status = "stopped"
    try:
        catch_up(config, specs, clock=clock, own_run=own_run)
        scheduler = started["scheduler"] = build_scheduler(config, specs, own_run=own_run)
        for job_id, when in next_fire_times(specs, clock()).items():
            log.info("%s next at %s", job_id, when.isoformat() if when else "never")
        if not stop_requested():
            scheduler.start()
    except BaseException:
        status = "failed"
        raise
    finally:
        with Store(config.store.path) as store:
            store.finish_run(own_run, now=clock(), status=status, counts={}, problems=[])
        alone.release()
        log.info("scheduler %s", status)


# --- status ---------------------------------------------------------------------------


def scheduler_lock_path(config: Config) -> Path:
    """The lock a running scheduler holds: ``pipeline.db.schedule.lock``."""
    db = config.store.path
    return db.with_name(db.name + ".schedule.lock")


def scheduler_state(store: Store) -> dict[str, Any] | None:
    """The open run of a live scheduler process, or None when none is running."""
    for run in reversed(store.open_runs()):
        if run["command"] == SCHEDULER_RUN and run.get("pid") and pid_alive(run["pid"]):
            return run
    return None


def status_lines(store: Store, config: Config, now: datetime) -> list[str]:
    """The schedule for `pipeline status`: the jobs, their next and last runs."""
    try:
        specs = job_specs(config, start=now)
    except ScheduleError as exc:
        return [f"  {p}" for p in exc.problems]
    running = scheduler_state(store)
    head = (
        f"`pipeline schedule` running (pid {running['pid']}, since {running['started']})"
        if running
        else "`pipeline schedule` not running"
    )
    tz = ZoneInfo(config.schedule.timezone)
    lines = [f"  {head}"]
    stage_lock = lock_path(config.store.path)
    if is_locked(stage_lock):
        holder = read_holder(stage_lock)
        lines.append(f"  busy: {holder.describe() if holder else 'a command'} holds the database lock")
    if not specs:
        lines.append("  no jobs: [schedule] turns every job off")
    for spec in specs:
        last = store.last_run(spec.id)
        if spec.period is None:
            # the interval counts from the last update, or from the scheduler's start
            base = parse_time(last["started"]) if last else parse_time(running["started"]) if running else None
            when = None if base is None else max(now, base + timedelta(minutes=config.schedule.interval_minutes))
        else:
            when = spec.trigger.get_next_fire_time(None, now)
        nxt = when.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if when else "at start"
        done = f"last {last['started']} {last['status']}" if last else "never run"
        lines.append(f"  {spec.id:<15}{spec.description:<48} next {nxt:<22} {done}")
    return lines


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)
