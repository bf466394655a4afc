"""Runs a job on one process at a time, and records every run.

Each job has a JobState row: a pause switch (kept in the database, so it holds on every process and
survives restarts) and a lease (owner, expiry) taken by compare-and-set in a write transaction, so
N gateway processes on SQLite or PostgreSQL never run the same job at once. A worker that dies
mid-run keeps the lease only until it expires; the next taker marks that run FAILED (abandoned).
Inside one process a lock per (worker, job) keeps a manual run and a scheduled one apart.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from peewee import Case, fn

from shared.db import db, for_update, is_sqlite, retry_locked, write_tx
from shared.models import JobRun, JobState
from shared.timeutil import utcnow

from ..notify.outbox import bind_wakeups
from ..payments.transitions import bind_hooks
from . import registry

log = logging.getLogger(__name__)
# A running job renews its lease every third of it, so the lease only bounds how long a dead worker's
# hold blocks the job (kill -9, power cut): a few intervals, within these limits.
MIN_LEASE_S, MAX_LEASE_S = 3.0, 60.0
RUNNING, OK, FAILED = "RUNNING", "OK", "FAILED"
ABANDONED = "abandoned: its worker's lease expired before the run finished"
_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def default_worker() -> str:
    """host:pid, the lease owner and JobRun.worker of this process."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


def run_job(name: str, ctx, *, trigger: str = "schedule", worker: str | None = None, now=None,
            lease_s: float | None = None, min_gap_s: float | None = None) -> JobRun | None:
    """Run one job here and record it; None when skipped (paused, running elsewhere, or a scheduled
    run within ``min_gap_s`` of the last one). The job's own exception is recorded, never raised.

    A manual run (trigger ``manual:<staff>``) ignores the pause and the gap, not the lease."""
    func = registry.get(name)
    if getattr(ctx, "hooks", None) is not None:
        bind_hooks(ctx.hooks)  # the scheduler's thread: changes made by the job run this app's listeners
    if getattr(ctx, "wakeups", None) is not None:
        bind_wakeups(ctx.wakeups)  # and the messages it queues wake this app's dispatcher
    lease_s = lease_s or lease_for(registry.interval(name, getattr(ctx, "config", None)))
    worker = (worker or default_worker())[:64]
    lock = _local_lock(worker, name)
    if not lock.acquire(blocking=False):
        return None
    try:
        with db.connection_context():
            now = now or utcnow()
            manual = trigger.startswith("manual")
            if not _take_lease(name, worker, now, lease_s, manual, None if manual else min_gap_s):
                log.debug("job %s skipped on %s", name, worker)
                return None
            renewal = _Renewal(name, worker, lease_s)
            try:
                run = _run(name, func, ctx, trigger, worker, now)
            finally:
                renewal.stop()
                _release(name, worker, now)
        _wake(ctx)
        return run
    finally:
        lock.release()


def lease_for(interval_s: float) -> float:
    """Three intervals, between MIN_LEASE_S and MAX_LEASE_S: a worker killed mid-run holds its jobs only
    that long, so a restarted gateway heals soon; a live run renews its lease as it goes."""
    return max(MIN_LEASE_S, min(MAX_LEASE_S, 3 * float(interval_s)))


class _Renewal:
    """Extends a running job's lease every third of it, so a run may outlast its lease while its worker
    lives. A failed renewal (database away) is logged; the run goes on, and at worst another process
    takes the job over after the lease (every job is safe to run twice: they lock and re-check rows)."""

    def __init__(self, name: str, worker: str, lease_s: float):
        self.name, self.worker, self.lease_s = name, worker, lease_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.wait(self.lease_s / 3):
            try:
                with db.connection_context():
                    self._renew()
            except Exception as exc:  # noqa: BLE001 - a renewal must never kill the run
                log.warning("job %s: lease renewal failed (%s)", self.name, type(exc).__name__)

    @retry_locked
    def _renew(self) -> None:
        with write_tx():
            JobState.update(lease_expires_at=utcnow() + timedelta(seconds=self.lease_s)).where(
                JobState.name == self.name, JobState.lease_owner == self.worker).execute()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)


def _local_lock(worker: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((worker, name), threading.Lock())


def _run(name: str, func, ctx, trigger: str, worker: str, started_at) -> JobRun:
    """Record RUNNING, call the job, record OK with its counts or FAILED with the error."""
    run = JobRun.create(job=name, worker=worker, trigger=trigger[:24], started_at=started_at)
    clock = time.monotonic()
    outcome, counts, error = OK, None, ""
    try:
        result = func(ctx)
        counts = result if isinstance(result, dict) else {"result": result}
    except Exception as exc:
        log.exception("job %s failed", name)
        outcome, error = FAILED, f"{type(exc).__name__}: {exc}"[:2000]
    finished_at = started_at + timedelta(seconds=time.monotonic() - clock)
    JobRun.update(outcome=outcome, counts=counts, error=error, finished_at=finished_at).where(
        JobRun.id == run.id).execute()
    busy = outcome != OK or any(value for value in (counts or {}).values())
    log.log(logging.INFO if busy else logging.DEBUG, "job %s %s on %s: %s", name, outcome, worker,
            counts if outcome == OK else error)
    return JobRun.get_by_id(run.id)


@retry_locked
def _take_lease(name: str, worker: str, now, lease_s: float, manual: bool, min_gap_s: float | None) -> bool:
    """Compare-and-set the lease to this worker; False when paused, held, or run too recently."""
    with write_tx():
        JobState.insert(name=name).on_conflict_ignore().execute()
        state = for_update(JobState.select().where(JobState.name == name)).get()
        if (state.paused and not manual) or _held(state, worker, now):
            return False
        if min_gap_s and state.last_run_at and now - state.last_run_at < timedelta(seconds=min_gap_s):
            return False
        taken = JobState.update(lease_owner=worker, lease_expires_at=now + timedelta(seconds=lease_s)).where(
            JobState.name == name,
            JobState.lease_owner.is_null() | (JobState.lease_expires_at < now) | (JobState.lease_owner == worker),
        ).execute()
        if taken and state.lease_owner not in (None, worker):
            JobRun.update(outcome=FAILED, error=ABANDONED).where(
                JobRun.job == name, JobRun.worker == state.lease_owner, JobRun.outcome == RUNNING).execute()
            log.warning("job %s: took over the expired lease of %s", name, state.lease_owner)
        return bool(taken)


def _held(state: JobState, worker: str, now) -> bool:
    """Another worker holds an unexpired lease."""
    return (state.lease_owner not in (None, worker) and state.lease_expires_at is not None
            and state.lease_expires_at >= now)


@retry_locked
def _release(name: str, worker: str, started_at) -> None:
    """Give the lease back (only if still ours) and remember when this run started."""
    with write_tx():
        JobState.update(lease_owner=None, lease_expires_at=None, last_run_at=started_at).where(
            JobState.name == name, JobState.lease_owner == worker).execute()


def _wake(ctx) -> None:
    """A job that queued notifications wakes the dispatcher, as a request does."""
    wake = getattr(ctx, "wake_dispatcher", None)
    if wake is not None:
        try:
            wake()
        except Exception:
            log.exception("waking the dispatcher failed")


def pause(name: str) -> None:
    """Stop scheduled runs of a job on every process until resume(); a running one finishes."""
    _set_paused(name, True)


def resume(name: str) -> None:
    """Let the scheduler run a paused job again."""
    _set_paused(name, False)


@retry_locked
def _set_paused(name: str, paused: bool) -> None:
    registry.get(name)
    with db.connection_context(), write_tx():
        JobState.insert(name=name).on_conflict_ignore().execute()
        JobState.update(paused=paused).where(JobState.name == name).execute()
    log.info("job %s %s", name, "paused" if paused else "resumed")


def _duration():
    """Seconds from started_at to finished_at, in SQL (NULL for an unfinished run)."""
    if is_sqlite():
        return (fn.julianday(JobRun.finished_at) - fn.julianday(JobRun.started_at)) * 86400.0
    return fn.date_part("epoch", JobRun.finished_at - JobRun.started_at)


def _aggregates() -> dict:
    """Per job: runs, OK and FAILED counts, mean duration; one grouped query."""
    query = JobRun.select(
        JobRun.job, fn.COUNT(JobRun.id).alias("runs"),
        fn.SUM(Case(None, [(JobRun.outcome == OK, 1)], 0)).alias("ok"),
        fn.SUM(Case(None, [(JobRun.outcome == FAILED, 1)], 0)).alias("failed"),
        fn.AVG(_duration()).alias("mean_s"),
    ).group_by(JobRun.job).dicts()
    return {row["job"]: row for row in query}


def job_stats(config=None) -> list[dict]:
    """For the jobs screen: per job runs, success rate, mean duration, last run, pause, interval."""
    with db.connection_context():
        totals = _aggregates()
        last_ids = JobRun.select(fn.MAX(JobRun.id)).group_by(JobRun.job)
        last = {run.job: run for run in JobRun.select().where(JobRun.id.in_(last_ids))}
        states = {state.name: state for state in JobState.select()}
    now = utcnow()
    return [_stats_row(name, totals.get(name, {}), last.get(name), states.get(name),
                       registry.interval(name, config), now) for name in registry.names()]


def _stats_row(name: str, totals: dict, last: JobRun | None, state: JobState | None, interval_s, now) -> dict:
    ok, failed = int(totals.get("ok") or 0), int(totals.get("failed") or 0)
    mean = totals.get("mean_s")
    last_run_at = state.last_run_at if state else None
    return {
        "name": name,
        "runs": int(totals.get("runs") or 0),
        "ok": ok,
        "failed": failed,
        "success_rate": round(ok / (ok + failed), 4) if ok + failed else None,
        "mean_duration_s": round(float(mean), 3) if mean is not None else None,
        "last_run": None if last is None else {
            "started_at": last.started_at, "finished_at": last.finished_at, "outcome": last.outcome,
            "error": last.error, "counts": last.counts, "worker": last.worker, "trigger": last.trigger},
        "paused": bool(state and state.paused),
        "running_on": state.lease_owner if state and _held(state, None, now) else None,
        "interval_s": interval_s,
        "last_run_at": last_run_at,
        "next_run_at": last_run_at + timedelta(seconds=interval_s) if last_run_at else None,
    }
