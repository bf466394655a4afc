"""Daraja down for a while, and Africa's Talking down for a while, under a real gateway process: the
provider is behind a TCP proxy the test cuts (connection refused) and restores.

Daraja down: every USSD hop still answers at once (the push goes out after the END); a push that cannot
reach Daraja fails that payment with a plain reason the customer is told by SMS, and is never sent again
later (the customer left the session; a second prompt for one payment is never sent); a payment already
waiting for its PIN is left alone by the sweep while its STK queries cannot get through, and settled by
the sweep once Daraja answers again.

Africa's Talking down: receipts stay queued and are retried with backoff (no message is given up during
an outage of up to an hour); once AT is back every one goes out, and none twice.
"""
from __future__ import annotations

from collections import Counter

import pytest

from gateway.payments.service import initiate
from gateway.payments.transitions import transition
from gateway.devtools.simulators.server import start_simulators
from shared.db import db, write_tx
from shared.models import Alert, JobRun, Notification, Payment, PaymentEvent
from shared.states import PaymentStatus
from shared.timeutil import utcnow
from tests.faults_support import GatewayProcess, ToggleProxy, open_database, paid_callback
from tests.helpers import wait_for

pytestmark = pytest.mark.server
WAITING = "+254711000001"  # pays before the outage; its result is only known by STK query
DURING = "+254711000002"  # tries to pay while Daraja is down
HOP_TIMEOUT_S = 5  # Africa's Talking drops a USSD hop not answered within a few seconds


@pytest.fixture
def slow_sim():
    """Simulators whose STK results are decided 3 s after the push (until then a query says "processing")."""
    server = start_simulators(port=0, callback_delay=3.0)
    yield server
    server.stop()


def dial_to_end(gateway: GatewayProcess, session: str, phone: str, amount: int) -> str:
    """The whole USSD pay flow; every hop answered within HOP_TIMEOUT_S. Returns the closing text."""
    for text in ("", "1", "1*12345", f"1*12345*{amount}"):
        assert gateway.dial(session, text, phone, timeout=HOP_TIMEOUT_S).text.startswith("CON")
    closing = gateway.dial(session, f"1*12345*{amount}*1", phone, timeout=HOP_TIMEOUT_S)
    assert closing.status_code == 200 and closing.text.startswith("END"), closing.text
    return closing.text


def payment_of(phone: str) -> Payment | None:
    """The phone's latest payment (matched in Python: the phone column may be sealed at rest)."""
    with db.connection_context():
        return next((p for p in Payment.select().order_by(Payment.id.desc()) if p.phone == phone.lstrip("+")), None)


def pushes_to(sim, phone: str) -> int:
    return sum(1 for push in sim.daraja.requests_log() if push["phone"] == phone.lstrip("+"))


def sweep_left_it(since) -> bool:
    """An expire-pending run since ``since`` queried the waiting payment and left it for the next run."""
    with db.connection_context():
        runs = JobRun.select().where(JobRun.job == "expire-pending", JobRun.started_at > since)
        return any((run.counts or {}).get("left") for run in runs)


def test_daraja_down_then_back(db_url, slow_sim, tmp_path):
    open_database(db_url)
    daraja = ToggleProxy(slow_sim.port)
    gateway = GatewayProcess(database_url=db_url, daraja_url=daraja.url("/daraja"), at_url=slow_sim.at_url, env={
        "LIPA_STK_TIMEOUT_S": "1", "LIPA_JOB_EXPIRE_PENDING_S": "1", "LIPA_JOB_DISPATCH_NOTIFICATIONS_S": "1"})
    try:
        gateway.start()
        slow_sim.daraja.set_outcome(WAITING.lstrip("+"), "no_callback")
        dial_to_end(gateway, "before-1", WAITING, 300)
        wait_for(lambda: payment_of(WAITING).status == "PROCESSING")
        daraja.cut()
        cut_at = utcnow()

        assert "M-Pesa prompt" in dial_to_end(gateway, "during-1", DURING, 500)
        refused = wait_for(lambda: (p := payment_of(DURING)).status != "PENDING" and p, timeout=20)
        assert refused.status == "FAILED" and "cannot connect" in refused.result_desc
        assert refused.status_message == "M-Pesa cannot be reached. Please try again in a minute."
        assert refused.push_attempts == 1
        status = gateway.dial("during-2", "2", DURING, timeout=HOP_TIMEOUT_S).text
        assert status.startswith("END") and refused.reference in status and "Failed" in status
        wait_for(lambda: sweep_left_it(cut_at), timeout=20, interval=0.2)  # tried, could not reach Daraja
        assert payment_of(WAITING).status == "PROCESSING"

        daraja.restore()
        settled = wait_for(lambda: (p := payment_of(WAITING)).status == "COMPLETED" and p, timeout=20)
        with db.connection_context():
            [done] = PaymentEvent.select().where(PaymentEvent.payment == settled.id,
                                                 PaymentEvent.to_status == "COMPLETED",
                                                 PaymentEvent.kind == "transition")
            assert (done.from_status, done.actor) == ("PROCESSING", "sweep")
            wait_for(lambda: Notification.select().where(Notification.status == "SENT").count() == 2)
        texts = [m["message"] for m in slow_sim.at.messages_for(DURING)]
        assert len(texts) == 1 and "M-Pesa cannot be reached" in texts[0]
        assert len(slow_sim.at.messages_for(WAITING)) == 1

        dial_to_end(gateway, "after-1", DURING, 500)  # the customer tries again: a new payment, pushed once
        wait_for(lambda: payment_of(DURING).status == "COMPLETED", timeout=20)
        assert pushes_to(slow_sim, WAITING) == 1 and pushes_to(slow_sim, DURING) == 1
        assert payment_of(DURING).id != refused.id
        with db.connection_context():
            assert Payment.get_by_id(refused.id).status == "FAILED"
            assert Payment.get_by_id(refused.id).push_attempts == 1
    finally:
        daraja.stop()
        print(gateway.log_tail())
        gateway.cleanup()


RECEIPTS = 5


def test_africastalking_down_then_back(db_url, sim, tmp_path):
    open_database(db_url)
    at = ToggleProxy(sim.port)
    gateway = GatewayProcess(database_url=db_url, daraja_url=sim.daraja_url, at_url=at.url("/at"), env={
        "LIPA_NOTIFY_BACKOFF_S": "0.2", "LIPA_JOB_DISPATCH_NOTIFICATIONS_S": "1"})
    try:
        with db.connection_context():
            payments = []
            for i in range(RECEIPTS):
                payment = initiate(phone=f"25471300000{i}", amount=200, account="SHOP1", channel="api")
                with write_tx():
                    transition(payment, PaymentStatus.PROCESSING, actor="test", checkout_request_id=f"ws_CO_at_{i}")
                payments.append(payment)
        gateway.start()
        at.cut()
        for i, payment in enumerate(payments):
            body = paid_callback(payment.checkout_request_id, amount=200, phone=payment.phone, receipt=f"RAT{i:07d}")
            assert gateway.callback(body).status_code == 200

        def retried_while_down() -> bool:
            with db.connection_context():
                rows = list(Notification.select().where(Notification.kind == "payment_completed"))
            return len(rows) == RECEIPTS and all(
                r.status in ("QUEUED", "SENDING") and r.attempts >= 3 and "unreachable" in r.failure_reason
                for r in rows)

        wait_for(retried_while_down, timeout=20, interval=0.1)
        assert sim.at.messages_for() == []
        at.restore()

        def all_sent() -> bool:
            with db.connection_context():
                return Notification.select().where(Notification.status == "SENT").count() == RECEIPTS
        wait_for(all_sent, timeout=30, interval=0.1)
        per_phone = Counter(m["to"].lstrip("+") for m in sim.at.messages_for())
        assert per_phone == Counter(p.phone for p in payments), "every receipt once, none twice"
        with db.connection_context():
            assert Notification.select().where(Notification.status != "SENT").count() == 0
            assert Alert.select().where(Alert.kind == "notification_failed").count() == 0
    finally:
        at.stop()
        print(gateway.log_tail())
        gateway.cleanup()
