"""Job runs that last: a run longer than its lease keeps renewing it, so no other worker takes the job
over mid-run; and the edges of a run's bookkeeping (no dispatcher to drive, a wake-up that fails)."""
from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

from gateway.jobs import registry, runner
from shared.models import JobRun, JobState
from tests.helpers import wait_for


def lease_of(name: str):
    return JobState.get(JobState.name == name).lease_expires_at


def test_a_long_run_renews_its_lease_and_keeps_other_workers_out(database, monkeypatch):
    seen = {}

    def slow(ctx):
        if "other" in seen:  # only reached if the other worker wrongly took the job
            return {"stolen": 1}
        first = lease_of("slow")
        seen["renewed"] = wait_for(lambda: lease_of("slow") > first, timeout=10)
        # Another worker looks after the first lease would have run out: the renewed one still holds.
        seen["other"] = runner.run_job("slow", ctx, worker="w2", now=first + timedelta(milliseconds=100))
        return {"done": 1}

    monkeypatch.setitem(registry.JOBS, "slow", slow)
    run = runner.run_job("slow", SimpleNamespace(), worker="w1", lease_s=0.6)
    assert seen["renewed"] and seen["other"] is None
    assert (run.outcome, run.counts, run.worker) == ("OK", {"done": 1}, "w1")
    assert [r.worker for r in JobRun.select().where(JobRun.job == "slow")] == ["w1"]
    state = JobState.get(JobState.name == "slow")
    assert state.lease_owner is None and state.lease_expires_at is None  # released at the end


def test_dispatch_job_without_a_dispatcher_says_so(database):
    run = runner.run_job("dispatch-notifications", SimpleNamespace(dispatcher=None), worker="w1")
    assert (run.outcome, run.counts) == ("OK", {"skipped": "no dispatcher"})


def test_a_failing_dispatcher_wake_up_does_not_fail_the_run(database, caplog):
    class Dispatcher:
        def dispatch_once(self):
            return 2

    def wake():
        raise RuntimeError("dispatcher thread gone")

    ctx = SimpleNamespace(dispatcher=Dispatcher(), wake_dispatcher=wake)
    with caplog.at_level(logging.ERROR, logger="gateway.jobs.runner"):
        run = runner.run_job("dispatch-notifications", ctx, worker="w1", trigger="manual:admin")
    assert (run.outcome, run.counts, run.trigger) == ("OK", {"handled": 2}, "manual:admin")
    assert "waking the dispatcher failed" in caplog.text
