"""Slow work apart from fast work (issue 15): a merchant endpoint trickling one byte a second, on a real
port, against the webhook sender's total deadline and the dispatcher's lanes."""
from __future__ import annotations

import pytest

from gateway.devtools.trickle import Trickle
from gateway.providers.africastalking import SmsSender
from gateway.providers.outbound import OutboundPolicy
from gateway.providers.webhooks import WebhookRetryable, WebhookSender
from shared.models import Notification
from shared.timeutil import utcnow
from tests.helpers import wait_for
from tests.test_dispatcher import PHONE, fresh
from tests.test_webhooks import SECRET


@pytest.fixture
def trickle():
    server = Trickle()
    yield server
    server.stop()


@pytest.mark.parametrize("policy", [None, OutboundPolicy(local=False, allow=("127.0.0.1",))],
                         ids=["no-policy", "pinned-ssrf-policy"])
def test_the_total_deadline_cuts_off_a_trickling_endpoint(trickle, policy):
    sender = WebhookSender(secret=SECRET, timeout=(1, 3), deadline_s=1, policy=policy)
    with pytest.raises(WebhookRetryable) as raised:
        sender.send(trickle.url, "{}")  # without the deadline: a minute, one byte a second
    assert "1s deadline" in raised.value.reason
    wait_for(lambda: trickle.open == 0, timeout=5)
    wait_for(lambda: trickle.cut_off == 1, timeout=5)
    assert trickle.accepted == 1


def test_a_quick_endpoint_is_unaffected_by_the_deadline():
    quick = Trickle(interval=0)
    try:
        assert WebhookSender(secret=SECRET, deadline_s=2).send(quick.url, "{}") == 200
    finally:
        quick.stop()


@pytest.fixture
def lanes(sim, conn):
    """A started dispatcher (real clock, real threads): SMS to the AT simulator, webhooks 2 s deadline."""
    made = []

    def start(**kwargs):
        from gateway.notify.dispatcher import Dispatcher

        dispatcher = Dispatcher(sms=SmsSender(username="sandbox", api_key="k", base_url=sim.at_url, timeout=(1, 3)),
                                webhooks=WebhookSender(secret=SECRET, timeout=(1, 3), deadline_s=2),
                                idle_wait_s=0.2, **kwargs)
        made.append(dispatcher)
        dispatcher.start()
        return dispatcher

    yield start
    for dispatcher in made:
        dispatcher.stop()


def _queue(**fields) -> Notification:
    fields = {"channel": "sms", "kind": "test", "recipient": PHONE, "body": "hi", "next_attempt_at": utcnow(),
              **fields}
    return Notification.create(**fields)


def test_an_sms_goes_out_while_a_slow_webhook_is_in_flight_and_the_webhook_is_retried(sim, trickle, lanes):
    dispatcher = lanes(webhook_workers=2)
    hook = _queue(channel="webhook", recipient=trickle.url, body="{}")
    dispatcher.wake()
    wait_for(lambda: trickle.open == 1, timeout=5)
    receipt = _queue(body="Paid KES 100")
    dispatcher.wake()
    wait_for(lambda: fresh(receipt).status == "SENT", timeout=5)
    assert trickle.open == 1 and fresh(hook).status == "SENDING"  # sent while the webhook is still held
    assert [m["message"] for m in sim.at.messages_for(PHONE)] == ["Paid KES 100"]
    wait_for(lambda: fresh(hook).status == "QUEUED", timeout=8)  # the deadline fired: retried later, once
    hook = fresh(hook)
    assert hook.attempts == 1 and "deadline" in hook.failure_reason and hook.next_attempt_at > utcnow()
    wait_for(lambda: trickle.cut_off == 1, timeout=5)  # the server sees its socket gone at its next byte


def test_at_most_two_attempts_to_one_host_and_the_third_waits_uncounted(trickle, lanes):
    dispatcher = lanes(webhook_workers=3, per_host=2, base_backoff_s=600)
    hooks = [_queue(channel="webhook", recipient=trickle.url, body=f'{{"n": {n}}}') for n in range(3)]
    dispatcher.wake()
    wait_for(lambda: trickle.open == 2, timeout=5)
    waiting = wait_for(lambda: [r for r in map(fresh, hooks) if r.status == "QUEUED"], timeout=5)
    assert len(waiting) == 1 and waiting[0].attempts == 0  # handed back, its try not counted
    wait_for(lambda: trickle.accepted == 3, timeout=10)  # it goes once a place is free (after the deadline)
    assert trickle.most_open == 2
    wait_for(lambda: all(fresh(h).status == "QUEUED" for h in hooks), timeout=8)
    assert [fresh(h).attempts for h in hooks] == [1, 1, 1]  # each tried once however often it waited



class FarAwayAT:
    """Africa's Talking as seen from a data centre: each request is held until ``meet`` are in flight
    together (or ``hold`` seconds passed), then answered. Records the most in flight at once and who got
    what, in order."""

    def __init__(self, meet: int, hold: float):
        import threading

        from tests.conftest import LiveServer

        self.meet, self.hold = meet, hold
        self.in_flight = self.most = 0
        self.sent: list[tuple[str, str]] = []
        self.changed = threading.Condition()
        self.server = LiveServer(self)
        self.url = self.server.url

    def __call__(self, environ, start_response):
        import json

        from werkzeug.wrappers import Request, Response

        form = Request(environ).form
        with self.changed:
            self.sent.append((form["to"], form["message"]))
            number = len(self.sent)
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.most >= self.meet, timeout=self.hold)
            self.in_flight -= 1
        answer = {"SMSMessageData": {"Message": "Sent to 1/1", "Recipients": [
            {"statusCode": 101, "number": form["to"], "status": "Success", "cost": "KES 0.8000",
             "messageId": f"ATXid_far{number}"}]}}
        return Response(json.dumps(answer), 201, content_type="application/json")(environ, start_response)


@pytest.mark.parametrize("workers", [3, 1])
def test_receipts_go_out_on_several_senders_at_once_and_one_phones_stay_in_order(conn, workers):
    """LIPA_SMS_WORKERS senders: receipts to three phones are in flight together (one sender: one at a
    time), and two messages to one phone still go out in the order they were queued."""
    from gateway.notify.dispatcher import Dispatcher

    at = FarAwayAT(meet=3, hold=10 if workers > 1 else 0.3)  # one sender: nothing to wait for
    dispatcher = Dispatcher(sms=SmsSender(username="sandbox", api_key="k", base_url=at.url, timeout=(1, 8)),
                            webhooks=WebhookSender(secret=SECRET), idle_wait_s=0.2, sms_workers=workers)
    phones = ["254711000001", "254711000002", "254711000003"]
    rows = [_queue(recipient=phones[0], body="first"), _queue(recipient=phones[1], body="b"),
            _queue(recipient=phones[0], body="second"), _queue(recipient=phones[2], body="c")]
    try:
        dispatcher.start()
        wait_for(lambda: all(fresh(r).status == "SENT" for r in rows), timeout=20)
    finally:
        dispatcher.stop()
        at.server.stop()
    assert at.most == min(workers, 3)
    assert [m for to, m in at.sent if to == "+" + phones[0]] == ["first", "second"]
    assert [fresh(r).attempts for r in rows] == [1, 1, 1, 1]


def test_a_webhook_in_flight_holds_no_database_connection(trickle, lanes):
    """A merchant endpoint may take the whole deadline: its sender gives its connection back meanwhile, so a
    slow merchant never takes the connections requests need (LIPA_DB_POOL_MAX on PostgreSQL)."""
    from shared.db import db

    pool = db.obj
    mine = len(pool._in_use)  # this test's own (the conn fixture)
    dispatcher = lanes(webhook_workers=2)
    _queue(channel="webhook", recipient=trickle.url, body="{}")
    dispatcher.wake()
    wait_for(lambda: trickle.open == 1, timeout=5)
    wait_for(lambda: len(pool._in_use) == mine, timeout=5)  # the sender, still waiting on the merchant, holds none
    assert trickle.open == 1
