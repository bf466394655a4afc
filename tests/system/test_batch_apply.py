"""Exactly once across processes: two gateway processes drain the same stored STK callbacks in batches at
the same moment (SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite). Every stored row is claimed by
exactly one of them, every payment completes by one transition with one receipt SMS, and re-sends of one
payment split across both processes (locked in CheckoutRequestID order, so never a deadlock) stay
duplicates. Runs on SQLite and on PostgreSQL (CI runs both)."""
from __future__ import annotations

import json
import multiprocessing
import time

import pytest

from gateway.ingest import inbox
from gateway.mpesa import batches
from shared.models import InboxMessage, Notification, Payment, PaymentEvent
from tests.conftest import CALLBACK_TOKEN, DATA_KEY, LOOKUP_KEY, fixture_json

pytestmark = pytest.mark.server
PAYMENTS = 60
COPIES = 3  # the callback and two re-sends, stored apart so they land in different batches
BATCH = 4


def paid_body(payment: Payment) -> str:
    body = fixture_json("stk_callback_paid.json")
    cb = body["Body"]["stkCallback"]
    cb["CheckoutRequestID"] = payment.checkout_request_id
    values = {"Amount": payment.amount, "MpesaReceiptNumber": f"NB{payment.id:08d}", "PhoneNumber": int(payment.phone)}
    for item in cb["CallbackMetadata"]["Item"]:
        if item["Name"] in values:
            item["Value"] = values[item["Name"]]
    return json.dumps(body)


def drain_in_child(env: dict, ready, go, results) -> None:
    """A process of its own, with its own app and database connections: drains when told, reports how many
    rows its batches claimed. It pauses a little between batches, as a drain between bursts does: SQLite's
    waiting writer sleeps in growing steps, and without a gap the other process would rarely get a turn."""
    from gateway import create_app
    from shared.config import load_config
    from shared.db import db

    app = create_app(load_config(env))
    services = app.extensions["lipa"]
    ready.set()
    go.wait(30)
    claimed = 0
    with db.connection_context():
        while True:
            done = batches.apply_batch(BATCH)
            claimed += done.claimed
            if done.claimed == 0:
                break
            time.sleep(0.01)
    services.tasks.shutdown()
    results.put(claimed)


def test_two_processes_drain_one_inbox_and_apply_each_callback_once(config, conn):
    payments = [Payment.create(reference=f"LPTWO{i:04d}", phone=f"2547083{i:05d}", amount=100 + i,
                               account="ACC", channel="ussd", status="PROCESSING",
                               checkout_request_id=f"ws_CO_two_{i:04d}", active_phone=f"2547083{i:05d}")
               for i in range(PAYMENTS)]
    for _ in range(COPIES):
        for payment in payments:
            inbox.store(batches.SOURCE, paid_body(payment))
    env = {"LIPA_PROFILE": "local", "DATABASE_URL": config.database_url,
           "MPESA_CALLBACK_TOKEN": CALLBACK_TOKEN, "LIPA_DATA_KEY": DATA_KEY,
           "LIPA_LOOKUP_KEY": LOOKUP_KEY, "MPESA_BASE_URL": "http://127.0.0.1:9/unused",
           "AT_BASE_URL": "http://127.0.0.1:9/unused"}
    spawn = multiprocessing.get_context("spawn")
    go, results = spawn.Event(), spawn.Queue()
    readies = [spawn.Event() for _ in range(2)]
    children = [spawn.Process(target=drain_in_child, args=(env, ready, go, results)) for ready in readies]
    for child in children:
        child.start()
    try:
        assert all(ready.wait(60) for ready in readies)
        go.set()
        claims = sorted(results.get(timeout=120) for _ in children)
    finally:
        for child in children:
            child.join(30)
    assert [child.exitcode for child in children] == [0, 0]
    assert sum(claims) == PAYMENTS * COPIES  # every stored row claimed, none by both
    assert claims[0] > 0, claims  # both processes took part
    for payment in payments:
        row = Payment.get_by_id(payment.id)
        assert row.status == "COMPLETED" and row.mpesa_receipt == f"NB{payment.id:08d}"
        assert PaymentEvent.select().where(PaymentEvent.payment == payment, PaymentEvent.kind == "transition",
                                           PaymentEvent.to_status == "COMPLETED").count() == 1
        assert Notification.select().where(Notification.payment == payment, Notification.channel == "sms").count() == 1
    statuses = [row.status for row in InboxMessage.select()]
    assert statuses.count("APPLIED") == PAYMENTS and statuses.count("DUPLICATE") == PAYMENTS * (COPIES - 1)
