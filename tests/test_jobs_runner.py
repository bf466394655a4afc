"""The job runner: leases across workers, pause/resume, run records, stats."""
from __future__ import annotations

import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest

from gateway.jobs import registry, runner
from shared.config import JOB_NAMES
from shared.errors import NotFound
from shared.models import JobRun, JobState
from shared.timeutil import utcnow
from tests.helpers import wait_for


@pytest.fixture
def jobs(monkeypatch):
    """Test jobs registered beside the real ones; each records its calls."""
    calls = []

    def ok(ctx):
        calls.append("ok")
        return {"done": 1}

    def boom(ctx):
        calls.append("boom")
        raise ValueError("the sky fell")

    monkeypatch.setitem(registry.JOBS, "ok", ok)
    monkeypatch.setitem(registry.JOBS, "boom", boom)
    return calls


CTX = SimpleNamespace()


def test_registry_matches_the_documented_job_names():
    assert registry.names() == JOB_NAMES
    assert registry.interval("expire-pending") == 30
    assert registry.interval("expire-pending", SimpleNamespace(job_intervals={"expire-pending": 5})) == 5
    with pytest.raises(NotFound):
        registry.get("nope")


def test_a_run_is_recorded_with_its_counts_and_releases_the_lease(database, jobs):
    run = runner.run_job("ok", CTX, worker="w1")
    assert (run.outcome, run.counts, run.worker, run.trigger, run.error) == ("OK", {"done": 1}, "w1", "schedule", "")
    assert run.finished_at >= run.started_at
    state = JobState.get(JobState.name == "ok")
    assert (state.lease_owner, state.lease_expires_at, state.last_run_at) == (None, None, run.started_at)


def test_a_failing_job_is_recorded_and_the_next_job_still_runs(database, jobs):
    failed = runner.run_job("boom", CTX, worker="w1")
    assert failed.outcome == "FAILED" and failed.error == "ValueError: the sky fell"
    assert JobState.get(JobState.name == "boom").lease_owner is None
    assert runner.run_job("ok", CTX, worker="w1").outcome == "OK"
    assert runner.run_job("boom", CTX, worker="w1").outcome == "FAILED"  # and it is tried again
    assert jobs == ["boom", "ok", "boom"]


def test_paused_job_is_skipped_but_a_manual_run_still_works(database, jobs):
    runner.pause("ok")
    assert runner.run_job("ok", CTX) is None
    manual = runner.run_job("ok", CTX, trigger="manual:alice")
    assert (manual.outcome, manual.trigger) == ("OK", "manual:alice")
    runner.resume("ok")
    assert runner.run_job("ok", CTX).outcome == "OK"
    assert jobs == ["ok", "ok"]
    with pytest.raises(NotFound):
        runner.pause("nope")


def test_pause_holds_for_another_connection(database, jobs):
    runner.pause("ok")
    seen = []
    elsewhere = threading.Thread(target=lambda: seen.append(runner.run_job("ok", CTX, worker="another-process")))
    elsewhere.start()  # its own connection, as another process would have
    elsewhere.join(10)
    assert seen == [None] and jobs == []


def test_a_lease_held_elsewhere_is_respected_even_by_a_manual_run(database, jobs):
    JobState.create(name="ok", lease_owner="other", lease_expires_at=utcnow() + timedelta(minutes=5))
    assert runner.run_job("ok", CTX, worker="w1") is None
    assert runner.run_job("ok", CTX, worker="w1", trigger="manual:bob") is None
    assert jobs == []


def test_an_expired_lease_is_taken_over_and_its_run_marked_abandoned(database, jobs):
    JobState.create(name="ok", lease_owner="dead", lease_expires_at=utcnow() - timedelta(seconds=1))
    orphan = JobRun.create(job="ok", worker="dead", started_at=utcnow() - timedelta(minutes=6))
    assert runner.run_job("ok", CTX, worker="w1").outcome == "OK"
    orphan = JobRun.get_by_id(orphan.id)
    assert orphan.outcome == "FAILED" and "lease expired" in orphan.error


def test_a_scheduled_run_soon_after_the_last_one_is_skipped(database, jobs):
    now = utcnow()
    assert runner.run_job("ok", CTX, worker="a", now=now, min_gap_s=24)
    assert runner.run_job("ok", CTX, worker="b", now=now + timedelta(seconds=10), min_gap_s=24) is None
    assert runner.run_job("ok", CTX, worker="b", now=now + timedelta(seconds=10), trigger="manual:x", min_gap_s=24)
    assert runner.run_job("ok", CTX, worker="b", now=now + timedelta(seconds=35), min_gap_s=24)
    assert len(jobs) == 3


def test_two_workers_racing_for_a_job_run_it_once(database, monkeypatch):
    started, release = [], threading.Event()

    def slow(ctx):
        started.append(threading.current_thread().name)
        assert release.wait(10)
        return {}

    monkeypatch.setitem(registry.JOBS, "slow", slow)
    barrier, results = threading.Barrier(2), {}

    def race(worker):
        barrier.wait(5)
        results[worker] = runner.run_job("slow", CTX, worker=worker)

    threads = [threading.Thread(target=race, args=(w,), name=w) for w in ("w1", "w2")]
    for thread in threads:
        thread.start()
    wait_for(lambda: results)  # the loser returns at once, while the winner is still running
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(started) == 1 and sorted(results) == ["w1", "w2"]
    assert [r.worker for r in results.values() if r is not None] == started
    assert JobRun.select().where(JobRun.job == "slow").count() == 1


def test_one_process_never_runs_a_job_twice_at_once(database, monkeypatch):
    release, calls = threading.Event(), []
    monkeypatch.setitem(registry.JOBS, "slow", lambda ctx: calls.append(1) or release.wait(10) and {})
    thread = threading.Thread(target=runner.run_job, args=("slow", CTX), kwargs={"worker": "same"})
    thread.start()
    wait_for(lambda: calls)
    assert runner.run_job("slow", CTX, worker="same", trigger="manual:x") is None
    release.set()
    thread.join(10)
    assert calls == [1]


def test_the_dispatcher_is_woken_after_a_run(database, jobs):
    woken = []
    runner.run_job("ok", SimpleNamespace(wake_dispatcher=lambda: woken.append(1)))
    assert woken == [1]


def test_stats(database, jobs):
    base = utcnow() - timedelta(hours=1)
    for seconds, outcome in ((2, "OK"), (4, "OK"), (6, "FAILED")):
        JobRun.create(job="retention", worker="w", started_at=base, finished_at=base + timedelta(seconds=seconds),
                      outcome=outcome, error="boom" if outcome == "FAILED" else "")
    JobRun.create(job="retention", worker="w", started_at=base + timedelta(minutes=1))  # still running
    runner.pause("expire-pending")
    runner.run_job("ok", CTX)
    stats = {row["name"]: row for row in runner.job_stats()}
    assert set(stats) == set(registry.names())
    retention = stats["retention"]
    assert (retention["runs"], retention["ok"], retention["failed"]) == (4, 2, 1)
    assert retention["success_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert retention["mean_duration_s"] == pytest.approx(4.0, abs=0.01)
    assert retention["last_run"]["outcome"] == "RUNNING" and retention["interval_s"] == 86400
    assert stats["expire-pending"]["paused"] is True and stats["expire-pending"]["runs"] == 0
    assert stats["expire-pending"]["success_rate"] is None and stats["expire-pending"]["last_run"] is None
    ok = stats["ok"]
    assert (ok["runs"], ok["success_rate"], ok["last_run"]["counts"], ok["paused"]) == (1, 1.0, {"done": 1}, False)
    assert ok["next_run_at"] == ok["last_run_at"] + timedelta(seconds=60) and ok["running_on"] is None
