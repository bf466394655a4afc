"""The outbox dispatcher: real SDK to the AT simulator, real webhooks, SQLite or PostgreSQL."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from gateway.notify.dispatcher import Dispatcher
from gateway.providers.africastalking import SmsSender
from gateway.providers.webhooks import WebhookSender
from shared.db import db
from shared.models import Alert, Notification
from shared.timeutil import utcnow
from tests.factories import FakeClock
from tests.helpers import wait_for
from tests.test_webhooks import SECRET, Receiver

PHONE = "254712345678"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def make_dispatcher(sim, clock):
    """Dispatchers wired to the AT simulator; any started thread is stopped at the end."""
    made = []

    def factory(**kwargs):
        kwargs.setdefault("sms", SmsSender(username="sandbox", api_key="k", base_url=sim.at_url, timeout=(1, 3)))
        kwargs.setdefault("webhooks", WebhookSender(secret=SECRET, timeout=(1, 3)))
        kwargs.setdefault("clock", clock)
        dispatcher = Dispatcher(**kwargs)
        made.append(dispatcher)
        return dispatcher

    yield factory
    for dispatcher in made:
        dispatcher.stop()


@pytest.fixture
def queue(conn, clock):
    """queue(**fields) -> a QUEUED SMS row due now (by the test clock)."""

    def add(**fields):
        fields = {"channel": "sms", "kind": "test", "recipient": PHONE, "body": "hi",
                  "next_attempt_at": clock.now, **fields}
        return Notification.create(**fields)

    return add


def fresh(row: Notification) -> Notification:
    return Notification.get_by_id(row.id)


def alerts() -> list[Alert]:
    return list(Alert.select().where(Alert.kind == "notification_failed"))


def test_dispatch_once_sends_and_records_the_provider_answer(sim, queue, make_dispatcher, clock):
    rows = [queue(body=f"receipt {n}") for n in range(3)]
    assert make_dispatcher().dispatch_once() == 3
    sent = sim.at.messages_for(PHONE)
    assert sorted(m["message"] for m in sent) == ["receipt 0", "receipt 1", "receipt 2"]
    for row in map(fresh, rows):
        assert row.status == "SENT" and row.attempts == 1 and row.sent_at == clock.now
        assert row.provider_message_id.startswith("ATXid_") and row.cost == "KES 0.8000"
        assert row.provider_status == "Success"
    assert {m["messageId"] for m in sent} == {fresh(r).provider_message_id for r in rows}
    assert make_dispatcher().dispatch_once() == 0  # nothing is sent twice


def test_rows_not_yet_due_wait(sim, queue, make_dispatcher, clock):
    row = queue(next_attempt_at=clock.now + timedelta(seconds=30))
    dispatcher = make_dispatcher()
    assert dispatcher.dispatch_once() == 0
    clock.advance(30)
    assert dispatcher.dispatch_once() == 1 and fresh(row).status == "SENT"


def test_retryable_failure_backs_off_then_sends(sim, queue, make_dispatcher, clock):
    row = queue()
    sim.at.set_fault("sms", "http_500", 1)
    dispatcher = make_dispatcher(base_backoff_s=5.0)
    assert dispatcher.dispatch_once() == 1
    row = fresh(row)
    assert row.status == "QUEUED" and row.attempts == 1 and row.claim_expires_at is None
    assert clock.now + timedelta(seconds=2.5) <= row.next_attempt_at <= clock.now + timedelta(seconds=7.5)
    assert "AT refused" in row.failure_reason
    assert dispatcher.dispatch_once() == 0  # not due yet
    clock.advance(8)
    assert dispatcher.dispatch_once() == 1
    row = fresh(row)
    assert row.status == "SENT" and row.attempts == 2 and row.failure_reason == ""
    assert len(sim.at.messages_for(PHONE)) == 1 and alerts() == []


def test_backoff_doubles_is_capped_and_gives_up_with_an_alert(sim, queue, make_dispatcher, clock):
    row = queue()
    sim.at.set_fault("sms", "http_500", 10)
    dispatcher = make_dispatcher(max_attempts=4, base_backoff_s=5, max_backoff_s=12, rng=lambda: 0.5, min_retry_s=0)
    delays = []
    for _ in range(3):
        assert dispatcher.dispatch_once() == 1
        delays.append((fresh(row).next_attempt_at - clock.now).total_seconds())
        clock.advance(delays[-1])
    assert delays == [5, 10, 12]
    assert dispatcher.dispatch_once() == 1
    row = fresh(row)
    assert row.status == "FAILED" and row.attempts == 4 and row.failure_reason.startswith("gave up after 4")
    [alert] = alerts()
    assert f"#{row.id}" in alert.message and PHONE not in alert.message
    assert sim.at.messages_for(PHONE) == []


def test_permanent_refusal_fails_at_once_with_an_alert(sim, queue, make_dispatcher):
    row = queue()
    sim.at.set_recipient_status(PHONE, 403)
    assert make_dispatcher().dispatch_once() == 1
    row = fresh(row)
    assert row.status == "FAILED" and row.attempts == 1 and "403" in row.failure_reason
    assert len(alerts()) == 1


def test_a_bad_number_fails_only_its_row(sim, queue, make_dispatcher):
    good1, bad, good2 = queue(), queue(recipient="not-a-phone"), queue()
    assert make_dispatcher().dispatch_once() == 3
    assert [fresh(r).status for r in (good1, bad, good2)] == ["SENT", "FAILED", "SENT"]
    assert fresh(bad).failure_reason == "invalid phone number"
    assert len(sim.at.messages_for(PHONE)) == 2 and len(alerts()) == 1


def test_a_bug_in_one_row_is_left_to_its_lease(sim, queue, make_dispatcher, clock, caplog):
    class Flaky(SmsSender):
        def send(self, phone, message):
            if message == "boom":
                raise RuntimeError("bug")
            return super().send(phone, message)

    rows = [queue(), queue(body="boom"), queue()]
    dispatcher = make_dispatcher(sms=Flaky(username="sandbox", api_key="k", base_url=sim.at_url))
    assert dispatcher.dispatch_once() == 2
    assert [fresh(r).status for r in rows] == ["SENT", "SENDING", "SENT"]
    assert "unexpected error" in caplog.text


def test_sms_disabled_suppresses_sms_but_webhooks_still_go(sim, queue, make_dispatcher, receiver):
    sms = queue()
    hook = queue(channel="webhook", recipient=receiver.url + "/hook", body=json.dumps({"id": "evt_1"}))
    assert make_dispatcher(enabled=False).dispatch_once() == 2
    assert (fresh(sms).status, fresh(sms).failure_reason) == ("SUPPRESSED", "SMS disabled")
    assert fresh(hook).status == "SENT" and fresh(hook).provider_status == "HTTP 200"
    assert sim.at.messages_for(PHONE) == []
    [call] = receiver.calls
    assert call["verified"] is not None and json.loads(call["body"]) == {"id": "evt_1"}


def test_webhook_outcomes(queue, make_dispatcher, receiver, clock):
    gone = queue(channel="webhook", recipient=receiver.url + "/gone", body="{}")
    receiver.status = 410
    dispatcher = make_dispatcher()
    assert dispatcher.dispatch_once() == 1
    assert fresh(gone).status == "FAILED" and len(alerts()) == 1
    busy = queue(channel="webhook", recipient=receiver.url + "/busy", body="{}")
    receiver.status = 503
    assert dispatcher.dispatch_once() == 1
    assert fresh(busy).status == "QUEUED" and fresh(busy).failure_reason.endswith("HTTP 503")


def test_unknown_channel_fails_instead_of_looping(queue, make_dispatcher):
    row = queue(channel="email", recipient="a@example.com")
    assert make_dispatcher().dispatch_once() == 1
    assert fresh(row).status == "FAILED" and "email" in fresh(row).failure_reason


def test_an_expired_lease_is_queued_again_and_sent(sim, queue, make_dispatcher, clock):
    dead = queue(status="SENDING", claimed_by="dead-host:1:1", attempts=1,
                 claim_expires_at=clock.now - timedelta(seconds=1))
    alive = queue(status="SENDING", claimed_by="busy-host:2:2", attempts=1,
                  claim_expires_at=clock.now + timedelta(seconds=30))
    dispatcher = make_dispatcher()
    assert dispatcher.dispatch_once() == 1
    dead, alive = fresh(dead), fresh(alive)
    assert dead.status == "SENT" and dead.attempts == 2 and dead.claimed_by == dispatcher.worker_id
    assert alive.status == "SENDING" and alive.claimed_by == "busy-host:2:2"  # still within its lease
    assert len(sim.at.messages_for(PHONE)) == 1


def test_requeue_is_visible_with_its_reason(queue, make_dispatcher, clock):
    row = queue(status="SENDING", claimed_by="dead", attempts=1, claim_expires_at=clock.now - timedelta(seconds=1))
    make_dispatcher().claim(0)
    row = fresh(row)
    assert (row.status, row.claimed_by, row.failure_reason) == ("QUEUED", None, "dispatcher stopped while sending")


def test_a_row_that_keeps_killing_its_dispatcher_ends_failed(queue, make_dispatcher, clock):
    row = queue(status="SENDING", claimed_by="dead", attempts=3, claim_expires_at=clock.now - timedelta(seconds=1))
    assert make_dispatcher(max_attempts=3, min_retry_s=0).dispatch_once() == 0
    assert fresh(row).status == "FAILED" and len(alerts()) == 1


def test_a_result_is_not_recorded_once_the_claim_was_taken_over(sim, queue, make_dispatcher, clock):
    row = queue()
    first = make_dispatcher()
    [row_id] = first.claim(10)
    Notification.update(claimed_by="someone-else").where(Notification.id == row_id).execute()
    assert first.dispatch_once() == 0 and first._handle(row_id, clock.now) == 0
    clock.advance(seconds=45)  # late in the batch: the lease renewal notices too
    assert first._handle(row_id, clock.now - timedelta(seconds=45)) == 0
    assert fresh(row).claimed_by == "someone-else" and sim.at.messages_for(PHONE) == []


def test_two_dispatchers_at_once_send_every_row_exactly_once(sim, queue, make_dispatcher):
    rows = [queue(body=f"m{n}") for n in range(60)]
    barrier = threading.Barrier(2)
    errors = []

    def work(dispatcher):
        try:
            with db.connection_context():
                barrier.wait(5)
                while dispatcher.dispatch_once(limit=3):
                    pass
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(make_dispatcher(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert all(fresh(row).status == "SENT" and fresh(row).attempts == 1 for row in rows)
    sent = sim.at.messages_for(PHONE)
    assert len(sent) == 60 and sorted(m["message"] for m in sent) == sorted(f"m{n}" for n in range(60))


def test_start_and_wake_send_without_dispatch_once(sim, queue, make_dispatcher):
    dispatcher = make_dispatcher(clock=utcnow, idle_wait_s=30)
    dispatcher.wake()  # safe before start
    first = queue(next_attempt_at=utcnow())
    dispatcher.start()
    dispatcher.start()  # a second start does not add a thread
    wait_for(lambda: fresh(first).status == "SENT", timeout=5)
    second = queue(next_attempt_at=utcnow())
    dispatcher.wake()  # the loop is idle for 30 s unless woken
    wait_for(lambda: fresh(second).status == "SENT", timeout=5)
    thread = dispatcher._thread
    dispatcher.stop()
    assert not thread.is_alive()
    assert len(sim.at.messages_for(PHONE)) == 2


def test_stop_without_start_is_harmless(make_dispatcher):
    make_dispatcher().stop()
