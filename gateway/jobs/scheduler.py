"""Wires the registered jobs to APScheduler interval triggers; it decides nothing itself.

Every gateway process (and `run_gateway.py scheduler`) runs one of these. Each firing goes through
runner.run_job, which takes the job's database lease first, so a job runs on one process at a time,
and skips a scheduled run that comes sooner than GAP_FRACTION of the interval after the last run on
any process, so N processes together still run each job about once per interval. The first run of
each job comes within a few seconds of start-up (a daily job must not wait a day after a restart;
the gap check stops it repeating when another process ran it recently).
"""
from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta, timezone

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from shared.db import UNAVAILABLE

from . import registry, runner

log = logging.getLogger(__name__)
UTC = timezone.utc  # noqa: UP017 - setup.cfg still allows Python 3.10
GAP_FRACTION = 0.8
FIRST_RUN_WITHIN_S = 5.0


class JobScheduler:
    """One interval trigger per job (max_instances=1, coalesce=True) calling runner.run_job."""

    def __init__(self, ctx, *, config=None, names=None, intervals: dict | None = None,
                 worker: str | None = None, first_run_within_s: float = FIRST_RUN_WITHIN_S):
        self.ctx = ctx
        config = config if config is not None else getattr(ctx, "config", None)
        self.intervals = {name: (intervals or {}).get(name) or registry.interval(name, config)
                          for name in (names or registry.names())}
        for name in self.intervals:
            registry.get(name)  # an unknown name fails here, not at the first firing
        self.worker = worker or runner.default_worker()
        _quiet_apscheduler()
        self.first_run_within_s = first_run_within_s
        self._scheduler = BackgroundScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(max(1, len(self.intervals)))},
            job_defaults={"max_instances": 1, "coalesce": True},
        )

    @property
    def running(self) -> bool:
        return self._scheduler.running

    def start(self) -> "JobScheduler":
        """Add the triggers and start the background thread; returns self."""
        now = datetime.now(UTC)
        for name, seconds in self.intervals.items():
            first = now + timedelta(seconds=random.uniform(0, min(seconds, self.first_run_within_s)))
            self._scheduler.add_job(self._fire, "interval", seconds=seconds, args=[name], id=name, name=name,
                                    next_run_time=first, misfire_grace_time=max(1, int(seconds)),
                                    replace_existing=True)
        self._scheduler.start()
        log.info("scheduler started on %s: %s", self.worker,
                 ", ".join(f"{name} every {seconds:g}s" for name, seconds in self.intervals.items()))
        return self

    def shutdown(self, wait: bool = True) -> None:
        """Stop firing; with wait, let running jobs finish (they work in bounded batches)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
            log.info("scheduler stopped on %s", self.worker)

    def _fire(self, name: str) -> None:
        """One trigger firing; bookkeeping errors (database down) are logged, the scheduler carries on."""
        try:
            interval = self.intervals[name]
            runner.run_job(name, self.ctx, worker=self.worker, min_gap_s=interval * GAP_FRACTION,
                           lease_s=runner.lease_for(interval))
        except UNAVAILABLE as exc:  # the database is away: one line a firing, the next firing tries again
            log.error("job %s could not be run: database unavailable (%s)", name, type(exc).__name__)
        except Exception:
            log.exception("job %s could not be run", name)


def _quiet_apscheduler() -> None:
    """Every run is recorded (JobRun) and logged by the runner; APScheduler's per-run INFO lines only
    repeat it. Its warnings (missed or overlapping runs) still show; a level set elsewhere is kept."""
    for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
