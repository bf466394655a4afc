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
    sender = WebhookSender(secret=SECRET, timeout=(1, 3), deadline_s=2, policy=policy)
    with pytest.raises(WebhookRetryable) as raised:
        sender.send(trickle.url, "{}")  # without the deadline: a minute, one byte a second
    assert "2s deadline" in raised.value.reason
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
