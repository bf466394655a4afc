"""The recovery mechanisms the fault tests rely on, one at a time: job leases that a dead worker holds only
briefly (and a live one renews), an inbox healer that one bad message cannot block, and an outbox that
survives a long provider outage without giving messages up."""
from __future__ import annotations

import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest

from gateway.jobs import healing
from gateway.jobs import registry, runner
from gateway.notify.dispatcher import Dispatcher
from gateway.providers.africastalking import SmsSender
from shared.db import db
from shared.models import InboxMessage, JobState, Notification
from shared.timeutil import utcnow
from tests.faults_support import ToggleProxy, open_database
from tests.helpers import free_port, wait_for


@pytest.fixture
def database(db_url):
    open_database(db_url)
    with db.connection_context():
        yield db


def test_a_job_lease_is_a_few_intervals_and_bounded():
    assert [runner.lease_for(s) for s in (0.1, 1, 10, 30, 86400)] == [3.0, 3.0, 30.0, 60.0, 60.0]


def test_a_running_job_renews_its_lease_so_no_one_takes_it_over(database, monkeypatch):
    release, started = threading.Event(), threading.Event()
    monkeypatch.setitem(registry.JOBS, "long", lambda ctx: started.set() or release.wait(10) and {})
    thread = threading.Thread(target=runner.run_job, args=("long", SimpleNamespace()),
                              kwargs={"worker": "alive", "lease_s": 0.6})
    thread.start()
    try:
        assert started.wait(10)
        first = JobState.get(JobState.name == "long").lease_expires_at
        wait_for(lambda: JobState.get(JobState.name == "long").lease_expires_at > first + timedelta(seconds=0.3))
        wait_for(lambda: utcnow() > first + timedelta(seconds=0.5))  # the first lease is over by now
        assert runner.run_job("long", SimpleNamespace(), worker="other", lease_s=0.6) is None
    finally:
        release.set()
        thread.join(10)
    assert JobState.get(JobState.name == "long").lease_owner is None


def test_one_message_that_cannot_be_applied_does_not_block_the_others(database, monkeypatch):
    bad = InboxMessage.create(source="daraja.stk", body="{}")
    good = InboxMessage.create(source="daraja.stk", body="{}")
    real = healing.apply_stk_callback

    def apply(row_id):
        if row_id == bad.id:
            raise RuntimeError("a bug in one message's handling")
        return real(row_id)

    monkeypatch.setattr(healing, "apply_stk_callback", apply)
    assert healing.process_inbox(daraja=None, callback_url="", older_than_s=0) == 1
    statuses = {row.id: row.status for row in InboxMessage.select()}
    assert statuses == {bad.id: "RECEIVED", good.id: "REJECTED"}  # the malformed body is kept, marked


class Clock:
    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now


def test_a_long_provider_outage_gives_no_message_up_within_the_retry_window(database):
    down = ToggleProxy(free_port())
    down.cut()  # nothing listens: every send is refused at connect
    clock = Clock()
    row = Notification.create(channel="sms", kind="payment_completed", recipient="254712345678", body="hi",
                              next_attempt_at=clock.now, created_at=clock.now)
    sender = SmsSender(username="sandbox", api_key="k", base_url=down.url("/at"), timeout=(1, 1))
    dispatcher = Dispatcher(sms=sender, webhooks=None, max_attempts=3, base_backoff_s=1, max_backoff_s=600,
                            clock=clock, rng=lambda: 0.5)
    for _ in range(6):  # twice max_attempts, 20 minutes of outage
        assert dispatcher.dispatch_once() == 1
        row = Notification.get_by_id(row.id)
        assert row.status == "QUEUED" and "unreachable" in row.failure_reason
        clock.now = max(clock.now + timedelta(minutes=3), row.next_attempt_at)
    clock.now = row.created_at + timedelta(hours=1, seconds=1)
    assert dispatcher.dispatch_once() == 1
    row = Notification.get_by_id(row.id)
    assert row.status == "FAILED" and row.attempts == 7 and row.failure_reason.startswith("gave up after 7")


def test_the_database_connection_waits_seconds_not_minutes(db_url):
    from shared.db import PG_CONNECT_TIMEOUT_S, init_db

    database = init_db(db_url)
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite opens a file: there is no connection to wait for")
    assert database.connect_params["connect_timeout"] == PG_CONNECT_TIMEOUT_S <= 5
