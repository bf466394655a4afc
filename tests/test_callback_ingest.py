"""An STK callback is stored (one insert) before its 200 and applied after it, in batches (mpesa.batches);
a failed apply keeps the stored row (RECEIVED) for a retry and the process-inbox job; re-sends, even
concurrent ones, change nothing."""
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from gateway.ingest import inbox
from gateway.jobs.healing import process_inbox
from gateway.mpesa import batches, callbacks
from shared.db import db
from shared.models import InboxMessage, Notification, Payment, PaymentEvent
from tests.conftest import CALLBACK_TOKEN, fixture_json
from tests.helpers import wait_for

URL = f"/mpesa/stk/callback/{CALLBACK_TOKEN}"
PHONE = "254708374149"


def paid_body(checkout: str, receipt: str = "NLJ7RT61SV", phone: str = PHONE) -> str:
    body = fixture_json("stk_callback_paid.json")
    cb = body["Body"]["stkCallback"]
    cb["CheckoutRequestID"] = checkout
    values = {"Amount": 500, "MpesaReceiptNumber": receipt, "PhoneNumber": int(phone)}
    for item in cb["CallbackMetadata"]["Item"]:
        if item["Name"] in values:
            item["Value"] = values[item["Name"]]
    return json.dumps(body)


def make_payment(checkout: str = "ws_CO_ingest_1", ref: str = "LPING0001", phone: str = PHONE) -> Payment:
    return Payment.create(reference=ref, phone=phone, amount=500, account="ACC42", channel="ussd",
                          status="PROCESSING", checkout_request_id=checkout, active_phone=phone)


def completions(payment: Payment) -> int:
    return PaymentEvent.select().where(PaymentEvent.payment == payment, PaymentEvent.kind == "transition",
                                       PaymentEvent.to_status == "COMPLETED").count()


def test_stored_before_the_answer_and_applied_after_it(client, app, conn):
    payment = make_payment()
    response = client.post(URL, data=paid_body("ws_CO_ingest_1"), content_type="application/json", keep_open=True)
    assert response.status_code == 200
    # The answer is still open (nothing ran after it): by the 200 the raw body is committed, nothing more.
    assert InboxMessage.get().status == "RECEIVED"
    assert Payment.get_by_id(payment.id).status == "PROCESSING" and Notification.select().count() == 0
    response.close()  # the answer has gone: this process's drain applies the stored callback
    app.extensions["lipa"].tasks.drain()
    assert InboxMessage.get().status == "APPLIED"
    assert Payment.get_by_id(payment.id).status == "COMPLETED" and completions(payment) == 1
    assert Notification.select().where(Notification.payment == payment).count() == 1


def test_failed_apply_rolls_back_to_the_stored_row_and_is_retried(client, app, conn, monkeypatch):
    payment = make_payment()
    applied = []

    def apply_then_fail(row, result, **kwargs):
        applied.append(callbacks.apply_parsed(row, result))  # the transition and its SMS row are written...
        raise RuntimeError("disk full")  # ...and undone with the savepoint

    monkeypatch.setattr(batches, "apply_parsed", apply_then_fail)
    assert client.post(URL, data=paid_body("ws_CO_ingest_1"), content_type="application/json").status_code == 200
    app.extensions["lipa"].tasks.drain()  # the batch failed it; the retry alone (unpatched) applied it
    assert applied == ["APPLIED", "APPLIED"]  # the batch without savepoints, then with one: both rolled back
    assert InboxMessage.get().status == "APPLIED"
    assert Payment.get_by_id(payment.id).status == "COMPLETED" and completions(payment) == 1
    assert Notification.select().count() == 1  # the failed batch's SMS row was rolled back with it


def test_unapplied_row_is_healed_by_process_inbox(client, app, conn, monkeypatch):
    payment = make_payment()

    def fail(row, result, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(batches, "apply_parsed", fail)
    monkeypatch.setattr(callbacks, "apply_parsed", fail)  # the retry alone fails too
    assert client.post(URL, data=paid_body("ws_CO_ingest_1"), content_type="application/json").status_code == 200
    app.extensions["lipa"].tasks.drain()
    assert InboxMessage.get().status == "RECEIVED"
    monkeypatch.undo()
    services = app.extensions["lipa"]
    assert process_inbox(daraja=services.daraja, callback_url=services.stk_callback_url, older_than_s=0) == 1
    assert InboxMessage.get().status == "APPLIED" and completions(payment) == 1


def test_one_batch_applies_many_callbacks_and_their_resends_once(app, conn):
    """Stored rows of several payments, each with re-sends, applied by one batch in one transaction; a stored
    body no parser accepts is REJECTED there and the rest still apply."""
    payments = [make_payment(f"ws_CO_batch_{i}", f"LPBAT000{i}", f"25470837416{i}") for i in range(5)]
    for payment in reversed(payments):  # stored newest payment first: applied in CheckoutRequestID order
        for _ in range(3):
            inbox.store(batches.SOURCE, paid_body(payment.checkout_request_id, f"NLJ7RT62S{payment.id}",
                                                  payment.phone))
    broken = inbox.store(batches.SOURCE, '{"Body": {}}')[0]
    done = batches.apply_batch(limit=32)
    assert done.claimed == 16 and done.failed == [] and done.flagged == []
    for payment in payments:
        assert Payment.get_by_id(payment.id).status == "COMPLETED" and completions(payment) == 1
        assert Notification.select().where(Notification.payment == payment).count() == 1
    statuses = [row.status for row in InboxMessage.select().order_by(InboxMessage.id)]
    assert statuses.count("APPLIED") == 5 and statuses.count("DUPLICATE") == 10
    assert InboxMessage.get_by_id(broken.id).status == "REJECTED"
    assert batches.apply_batch(limit=32).claimed == 0  # nothing is ever claimed twice


def test_one_callback_that_fails_leaves_the_rest_of_its_batch_applied(app, conn, monkeypatch):
    payments = [make_payment(f"ws_CO_part_{i}", f"LPPRT000{i}", f"25470837418{i}") for i in range(3)]
    for p in payments:
        inbox.store(batches.SOURCE, paid_body(p.checkout_request_id, f"NLJ7RT65S{p.id}", p.phone))

    def fail_the_second(row, result, **kwargs):
        if result.checkout_request_id == "ws_CO_part_1":
            raise RuntimeError("bug")
        return callbacks.apply_parsed(row, result)

    monkeypatch.setattr(batches, "apply_parsed", fail_the_second)
    done = batches.apply_batch(limit=32)
    assert done.claimed == 3 and len(done.failed) == 1
    assert [Payment.get_by_id(p.id).status for p in payments] == ["COMPLETED", "PROCESSING", "COMPLETED"]
    assert [completions(p) for p in payments] == [1, 0, 1]  # the first try, rolled back, left nothing behind
    assert Notification.select().count() == 2


def test_a_batch_is_bounded_and_skips_rows_that_failed(app, conn):
    payments = [make_payment(f"ws_CO_bound_{i}", f"LPBND000{i}", f"25470837417{i}") for i in range(3)]
    rows = [inbox.store(batches.SOURCE, paid_body(p.checkout_request_id, f"NLJ7RT63S{p.id}", p.phone))[0]
            for p in payments]
    assert batches.apply_batch(limit=1, skip=frozenset({rows[0].id})).claimed == 1
    assert [InboxMessage.get_by_id(row.id).status for row in rows] == ["RECEIVED", "APPLIED", "RECEIVED"]


def test_a_kick_while_the_drain_runs_makes_it_look_again(app, conn, monkeypatch):
    """A callback stored while the drain is in its last batch is still applied by that drain, not left for
    process-inbox: the drain decides to stop under the same lock kick() takes."""
    services = app.extensions["lipa"]
    first, second = make_payment("ws_CO_kick_1", "LPKCK0001"), make_payment("ws_CO_kick_2", "LPKCK0002",
                                                                            "254708374170")
    inbox.store(batches.SOURCE, paid_body("ws_CO_kick_1"))
    real = batches.apply_batch
    calls = []

    def batch_then_store(limit, skip):
        done = real(limit, skip)
        calls.append(done.claimed)
        if len(calls) == 1:  # another request stores a callback and kicks while this batch finishes
            inbox.store(batches.SOURCE, paid_body("ws_CO_kick_2", "NLJ7RT64SV", "254708374170"))
            services.callbacks.kick()
        return done

    monkeypatch.setattr(batches, "apply_batch", batch_then_store)
    services.callbacks.kick()
    services.tasks.drain()
    assert calls == [1, 1]  # the second look found the row the kick was for
    assert Payment.get_by_id(first.id).status == Payment.get_by_id(second.id).status == "COMPLETED"


@pytest.mark.server
def test_concurrent_resends_complete_once(live, conn):
    """Eight copies of each of three callbacks, all in flight together, against a threaded server."""
    payments = [make_payment(f"ws_CO_ingest_{i}", f"LPING000{i}", f"25470837415{i}") for i in range(3)]
    bodies = []
    for i, payment in enumerate(payments):
        bodies += [paid_body(payment.checkout_request_id, f"NLJ7RT61S{i}", payment.phone)] * 8
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda body: requests.post(
            f"{live.url}{URL}", data=body, headers={"Content-Type": "application/json"}, timeout=30), bodies))
    assert [a.status_code for a in answers] == [200] * 24
    wait_for(lambda: not InboxMessage.select().where(InboxMessage.status == "RECEIVED").exists())
    for payment in payments:
        assert Payment.get_by_id(payment.id).status == "COMPLETED" and completions(payment) == 1
        assert Notification.select().where(Notification.payment == payment, Notification.channel == "sms").count() == 1
    statuses = [row.status for row in InboxMessage.select()]
    assert len(statuses) == 24 and statuses.count("APPLIED") == 3 and statuses.count("DUPLICATE") == 21


@pytest.mark.skipif(not os.environ.get("LIPA_TEST_DATABASE_URL"), reason="PostgreSQL only (row locks)")
def test_a_batch_leaves_a_callback_whose_payment_another_transaction_holds_and_applies_it_later(app, conn):
    """A payment locked elsewhere (another drain's batch holding a re-send) is skipped, not waited for: the
    batch applies the others at once and leaves that callback RECEIVED; a later batch applies it once."""
    held, free = make_payment("ws_CO_held", "LPHELD001"), make_payment("ws_CO_free", "LPFREE001", "254708374150")
    inbox.store(batches.SOURCE, paid_body("ws_CO_held", "NLJ7RT6HLD"))
    inbox.store(batches.SOURCE, paid_body("ws_CO_free", "NLJ7RT6FRE", "254708374150"))
    locked, release = threading.Event(), threading.Event()

    def holder():
        with db.connection_context(), db.atomic():
            Payment.select().where(Payment.id == held.id).for_update().get()
            locked.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert locked.wait(10)
        began = time.monotonic()
        done = batches.apply_batch(limit=32)
        assert time.monotonic() - began < 5  # it did not wait for the holder (which holds for 30 s)
        assert done.claimed == 2 and len(done.held) == 1
        assert Payment.get_by_id(free.id).status == "COMPLETED"
        assert Payment.get_by_id(held.id).status == "PROCESSING"
        assert InboxMessage.get_by_id(done.held[0]).status == "RECEIVED"
    finally:
        release.set()
        thread.join(10)
    again = batches.apply_batch(limit=32)
    assert again.claimed == 1 and again.held == []
    assert Payment.get_by_id(held.id).status == "COMPLETED" and completions(held) == 1
