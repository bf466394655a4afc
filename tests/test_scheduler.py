"""The scheduler wiring: every job fires through the runner; `run_gateway.py scheduler` runs alone."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.jobs import registry, runner
from gateway.jobs.scheduler import JobScheduler
from gateway.server import GatewayServer, _worker_exit
from shared.config import JOB_NAMES
from shared.db import db
from shared.models import JobRun
from tests.conftest import CALLBACK_TOKEN
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
TINY = {name: 0.2 for name in JOB_NAMES}


def finished_jobs() -> set[str]:
    with db.connection_context():
        return {run.job for run in JobRun.select().where(JobRun.outcome != "RUNNING")}


def test_every_job_runs_through_the_runner_and_shutdown_is_clean(make_app):
    services = make_app().extensions["lipa"]
    runner.pause("retention")
    scheduler = JobScheduler(services, intervals=TINY, first_run_within_s=0).start()
    try:
        wait_for(lambda: finished_jobs() >= set(JOB_NAMES) - {"retention"}, timeout=20)
    finally:
        scheduler.shutdown()
    assert not scheduler.running
    with db.connection_context():
        runs = list(JobRun.select())
        assert {r.outcome for r in runs if r.job not in ("reconcile", "retention")} == {"OK"}
        assert all(r.worker == scheduler.worker for r in runs)
        assert not [r for r in runs if r.job == "retention"]  # paused holds for the scheduler too
    count = len(runs)
    with db.connection_context():
        assert JobRun.select().count() == count  # nothing fires after shutdown


def test_intervals_come_from_the_configuration(make_app):
    services = make_app(config_overrides={"job_intervals": {"expire-pending": 5}}).extensions["lipa"]
    intervals = JobScheduler(services).intervals
    assert intervals["expire-pending"] == 5 and intervals["retention"] == registry.DEFAULT_INTERVALS["retention"]


def test_the_gateway_worker_starts_and_stops_its_scheduler(make_app, config):
    app = make_app(start_scheduler=True)
    services = app.extensions["lipa"]
    assert services.scheduler.running
    _worker_exit(None, SimpleNamespace(wsgi=app, pid=os.getpid()))
    assert not services.scheduler.running
    assert make_app().extensions["lipa"].scheduler is None
    assert GatewayServer(config, host="127.0.0.1", port=0, scheduler=False).start_scheduler is False


def _job_names_recorded(path: Path) -> set[str]:
    try:
        with sqlite3.connect(path) as conn:
            return {row[0] for row in conn.execute("SELECT job FROM job_run WHERE outcome = 'OK'")}
    except sqlite3.OperationalError:
        return set()  # not migrated yet, or busy


@pytest.mark.server  # a child process
def test_run_gateway_scheduler_runs_jobs_and_exits_0_on_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIPA_", "MPESA_", "AT_", "DATABASE_"))}
    path = tmp_path / "jobs.db"
    env.update({"DATABASE_URL": f"sqlite:///{path}", "LIPA_PROFILE": "local", "MPESA_CALLBACK_TOKEN": CALLBACK_TOKEN,
                "MPESA_BASE_URL": "http://127.0.0.1:9", "AT_BASE_URL": "http://127.0.0.1:9"})
    env.update({f"LIPA_JOB_{name.upper().replace('-', '_')}_S": "1" for name in JOB_NAMES})
    with open(tmp_path / "out.log", "wb") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_gateway.py"), "scheduler"], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: _job_names_recorded(path) >= set(JOB_NAMES) - {"reconcile"}, timeout=30, interval=0.2)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, (tmp_path / "out.log").read_text()[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
