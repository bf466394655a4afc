"""The database unavailable under a running gateway, then back, with no restart.

On PostgreSQL the gateway reaches the database through a TCP proxy the test cuts (connections refused,
open ones dropped). On SQLite the honest equivalent is the database's volume going away: the directory
holding the file is moved aside (a new connection cannot open the file, and SQLite cannot create a
fresh empty one there), then put back.

While it is away: /healthz answers 503 {"status": "unavailable", "database": "unreachable"}, USSD a short
END text, the API its JSON error with 503, and an STK callback is not acknowledged (Daraja sends it
again). When it is back, the same worker process serves again, its dispatcher thread and job scheduler
still running.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import requests

from gateway.backoffice import auth
from shared.db import db
from shared.models import JobRun, Notification, Payment
from shared.timeutil import utcnow
from tests.conftest import PG_URL
from tests.faults_support import GatewayProcess, ToggleProxy, open_database, paid_callback
from tests.helpers import wait_for

pytestmark = pytest.mark.server
PHONE = "+254712000111"
USSD_MAX = 182  # characters a USSD screen holds


class SqliteVolume:
    """The database file's directory, moved away and back (as a volume unmounted and mounted again)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.away = directory.with_name(directory.name + ".away")

    def cut(self):
        os.rename(self.directory, self.away)

    def restore(self):
        if self.away.exists():
            os.rename(self.away, self.directory)

    stop = restore


@pytest.fixture
def outage(db_url, tmp_path):
    """(gateway DATABASE_URL, the switch): a PostgreSQL proxy, or the SQLite file's directory."""
    if PG_URL:
        proxy = ToggleProxy(5432)
        yield PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"), proxy
        proxy.stop()
        return
    directory = tmp_path / "volume"
    directory.mkdir()
    volume = SqliteVolume(directory)
    yield f"sqlite:///{directory}/lipa.db", volume
    volume.restore()
    shutil.rmtree(directory, ignore_errors=True)


def test_database_away_then_back_without_a_restart(outage, db_url, sim):
    gateway_db, switch = outage
    local_db = db_url if PG_URL else gateway_db
    open_database(local_db)
    with db.connection_context():
        auth.create_staff("ops", "ops-password-1", "operator")
    gateway = GatewayProcess(database_url=gateway_db, daraja_url=sim.daraja_url, at_url=sim.at_url, env={
        "LIPA_JOB_PROCESS_INBOX_S": "1", "LIPA_JOB_EXPIRE_PENDING_S": "1",
        "LIPA_JOB_DISPATCH_NOTIFICATIONS_S": "3600"})  # so only the dispatcher thread sends promptly
    try:
        gateway.start()
        [worker] = gateway.worker_pids()
        token = requests.post(f"{gateway.url}/api/v1/auth/login", timeout=5,
                              json={"username": "ops", "password": "ops-password-1"}).json()["token"]
        api = {"Authorization": f"Bearer {token}"}

        switch.cut()
        while_away(gateway, api)
        switch.restore()
        back_at = utcnow()

        wait_for(lambda: requests.get(f"{gateway.url}/healthz", timeout=5).status_code == 200, timeout=15)
        assert requests.get(f"{gateway.url}/healthz", timeout=5).json() == {"status": "ok", "database": "ok"}
        assert gateway.worker_pids() == {worker}, "served again by the same worker, no restart"
        assert requests.get(f"{gateway.url}/api/v1/payments", headers=api, timeout=5).status_code == 200
        pay_after(gateway, sim)
        with db.connection_context():  # the scheduler thread survived: its jobs run again
            wait_for(lambda: JobRun.select().where(JobRun.job == "process-inbox", JobRun.outcome == "OK",
                                                   JobRun.started_at >= back_at).exists(), timeout=15)
    finally:
        switch.restore()
        print(gateway.log_tail())
        gateway.cleanup()


def while_away(gateway: GatewayProcess, api: dict) -> None:
    """Every entry point fails cleanly, and fast; the background threads meet the outage too."""
    began = time.monotonic()
    health = requests.get(f"{gateway.url}/healthz", timeout=10)
    assert (health.status_code, health.json()) == (503, {"status": "unavailable", "database": "unreachable"})
    for text in ("", "1*12345*500*1"):
        hop = gateway.dial("away-1", text, PHONE)
        assert hop.status_code == 200 and hop.text.startswith("END ") and len(hop.text) <= USSD_MAX, hop.text
    listing = requests.get(f"{gateway.url}/api/v1/payments", headers=api, timeout=10)
    assert listing.status_code == 503 and set(listing.json()["error"]) == {"code", "message"}, listing.text
    callback = gateway.callback(paid_callback("ws_CO_away", amount=500, phone="254712000111", receipt="RAWAY001"))
    assert callback.status_code == 503 and "error" in callback.json(), "not acknowledged: Daraja sends it again"
    assert time.monotonic() - began < 10, "failing fast, not hanging"
    wait_for(lambda: "job process-inbox could not be run" in gateway.log_text()
             and "dispatcher pass failed: database unavailable" in gateway.log_text(), timeout=15, interval=0.2)


def pay_after(gateway: GatewayProcess, sim) -> None:
    """A whole payment over USSD: the push, the callback, and the receipt sent by the dispatcher thread."""
    for text in ("", "1", "1*12345", "1*12345*500"):
        assert gateway.dial("back-1", text, PHONE).text.startswith("CON")
    assert gateway.dial("back-1", "1*12345*500*1", PHONE).text.startswith("END")
    with db.connection_context():
        wait_for(lambda: Payment.select().where(Payment.status == "COMPLETED").count() == 1, timeout=15)
        wait_for(lambda: Notification.select().where(Notification.kind == "payment_completed",
                                                     Notification.status == "SENT").count() == 1, timeout=15)
    assert len([m for m in sim.at.messages_for(PHONE) if m["message"].startswith("Lipa receipt")]) == 1
