"""A webhook signing secret per merchant (issue 13, finding 2), through the API and a real merchant endpoint.

Merchants get their secret from create-api-key (the same function the command runs), create and cancel
payment requests through the API, and the real dispatcher posts the signed events to a receiver on a
real port. Merchant A's secret never verifies B's events (nor a forged one), staff requests are signed
with LIPA_WEBHOOK_SECRET, and a rotation keeps both secrets valid for 24 h, then only the new one.
"""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from gateway import cli
from gateway.notify import webhook_secrets
from gateway.notify.dispatcher import Dispatcher
from gateway.providers.webhooks import WebhookSender, WebhookSignatureError, sign, verify
from shared.db import db
from shared.models import Notification, WebhookSecret
from shared.timeutil import utcnow
from tests.helpers import staff_headers
from tests.test_webhooks import Receiver

from .conftest import QuietDispatcher

URL = "/api/v1/payment-requests"
BILL = {"amount": 1500, "description": "Fees", "account": "adm1042"}
DAY = 24 * 3600


@pytest.fixture
def app(make_app):
    return make_app(dispatcher=QuietDispatcher(), config_overrides={"api_rate_limits": False})


@pytest.fixture
def hooks():
    receiver = Receiver(secret="unused")
    yield receiver
    receiver.stop()


def merchant(capsys, name: str) -> dict:
    """What create-api-key prints, parsed: {"api_key": "lpk_…", "webhook_secret": "whsec_…"}."""
    with db.connection_context():
        print(cli._api_key_lines(name))
    lines = capsys.readouterr().out.strip().splitlines()
    return dict(line.split(": ", 1) for line in lines)


def cancelled_event(client, hooks, headers, *, later_s: int = 0) -> tuple[str, bytes]:
    """A request made and cancelled through the API; its webhook sent by a real dispatcher, later_s from now."""
    made = client.post(URL, headers=headers, json={**BILL, "callback_url": f"{hooks.url}/hook"}).get_json()
    assert client.post(f"{URL}/{made['id']}/cancel", headers=headers).status_code == 200
    config = client.application.extensions["lipa"].config
    sender = WebhookSender(secret=config.webhook_secret, timeout=(1, 3), clock=lambda: time.time() + later_s)
    dispatcher = Dispatcher(sms=None, webhooks=sender, clock=lambda: utcnow() + timedelta(seconds=later_s))
    with db.connection_context():
        assert dispatcher.dispatch_once() == 1
        assert Notification.get(Notification.request == made["id"]).status == "SENT"
    call = hooks.calls[-1]
    return call["headers"]["Lipa-Signature"], call["body"]


def valid(secret: str, header: str, body: bytes, later_s: int = 0) -> bool:
    try:
        verify(secret, header, body, now=time.time() + later_s)
    except WebhookSignatureError:
        return False
    return True


def test_each_merchant_verifies_only_its_own_events(app, hooks, capsys):
    a, b = merchant(capsys, "Acme"), merchant(capsys, "Bolt")
    assert a["api_key"].startswith("lpk_") and a["webhook_secret"].startswith("whsec_")
    assert a["webhook_secret"] != b["webhook_secret"]
    client = app.test_client()
    header, body = cancelled_event(client, hooks, {"Authorization": f"Bearer {a['api_key']}"})
    assert json.loads(body)["type"] == "payment_request.cancelled" and header.count("v1=") == 1
    assert valid(a["webhook_secret"], header, body)
    assert not valid(b["webhook_secret"], header, body)  # B cannot check (so cannot forge) A's
    assert not valid(app.extensions["lipa"].config.webhook_secret, header, body)  # signed with A's only
    # A forges an event about B's request, signed with A's own secret: B's verification refuses it
    forged = json.dumps({"id": "evt_req99_paid", "type": "payment_request.paid",
                         "data": {"payment_request": {"id": 99, "status": "PAID"}}}).encode()
    with pytest.raises(WebhookSignatureError):
        verify(b["webhook_secret"], sign(a["webhook_secret"], int(time.time()), forged), forged)


def test_requests_staff_created_are_signed_with_the_gateway_secret(app, hooks, capsys):
    a = merchant(capsys, "Acme")
    with db.connection_context():
        staff = staff_headers(roles=["operator"])
    header, body = cancelled_event(app.test_client(), hooks, staff["operator"])
    assert valid(app.extensions["lipa"].config.webhook_secret, header, body)
    assert not valid(a["webhook_secret"], header, body)


def test_rotation_signs_with_both_for_a_day_then_only_the_new_one(app, hooks, capsys):
    old = merchant(capsys, "Acme")
    with db.connection_context():
        new = webhook_secrets.rotate("Acme")
    assert new.startswith("whsec_") and new != old["webhook_secret"]
    client, headers = app.test_client(), {"Authorization": f"Bearer {old['api_key']}"}
    header, body = cancelled_event(client, hooks, headers)
    assert header.count("v1=") == 2 and valid(old["webhook_secret"], header, body) and valid(new, header, body)
    later = DAY + 3600
    header, body = cancelled_event(client, hooks, headers, later_s=later)
    assert header.count("v1=") == 1 and valid(new, header, body, later)
    assert not valid(old["webhook_secret"], header, body, later)


def test_secrets_are_sealed_at_rest_and_a_second_key_keeps_the_secret(app, capsys):
    first = merchant(capsys, "Acme")
    second = merchant(capsys, "Acme")
    assert second["api_key"] != first["api_key"] and not second["webhook_secret"].startswith("whsec_")
    with db.connection_context():
        raw = [row[0] for row in db.execute_sql("SELECT secret FROM webhook_secret").fetchall()]
        assert len(raw) == 1 and first["webhook_secret"] not in raw[0] and "whsec_" not in raw[0]
        assert [row.secret for row in WebhookSecret.select()] == [first["webhook_secret"]]
