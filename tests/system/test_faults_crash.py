"""kill -9 of a real gateway process in the middle of a burst of STK callbacks, then a restart on the same
database and a replay of what was not acknowledged (plus, as Daraja does, a few that were).

What "exactly once" means here, honestly:
- every acknowledged callback is applied once: its raw body was committed before the 200, and a body
  committed but not applied when the process died is applied after the restart by the process-inbox job;
  replays and duplicates are absorbed (one PROCESSING -> COMPLETED event per payment);
- every completed payment gets one receipt row in the outbox, and that row is sent once, with one
  exception we cannot close: a send in flight at the kill (the SDK call made, its answer or the SENT commit
  lost) may have reached Africa's Talking, which has no idempotency key to ask; the row is sent again after
  its claim expires. So: at most one duplicate per sending thread that was mid-call at the kill, and only
  for a row whose claim died; every other phone gets its receipt exactly once.
"""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from gateway.ingest import inbox
from gateway.payments.service import initiate
from gateway.payments.transitions import transition
from shared.config import load_config
from shared.db import db, write_tx
from shared.models import InboxMessage, Notification, Payment, PaymentEvent
from shared.states import PaymentStatus
from tests.faults_support import GatewayProcess, dumps, open_database, paid_callback
from tests.helpers import wait_for

pytestmark = pytest.mark.server

BURST = 80  # callbacks posted while the gateway is killed
STORED_ONLY = 4  # callbacks committed to the inbox but never applied (as a kill right after the 200 leaves them)
KILL_AFTER = 30  # acknowledgements before the kill
AMOUNT = 100
# Senders that may be mid-call at the kill: the SMS lane's LIPA_SMS_WORKERS and the dispatch-notifications job.
SENDERS_PER_PROCESS = load_config({}, read_dotenv=False).sms_workers + 1


def seed(count: int) -> list[Payment]:
    """PROCESSING payments with their CheckoutRequestIDs, made through the service layer."""
    payments = []
    for i in range(count):
        payment = initiate(phone=f"2547{10000000 + i}", amount=AMOUNT, account=f"ACC{i}", channel="api")
        with write_tx():
            transition(payment, PaymentStatus.PROCESSING, actor="test", reason="seeded",
                       checkout_request_id=f"ws_CO_fault_{i:05d}", merchant_request_id=f"m-{i}")
        payments.append(payment)
    return payments


def body_for(payment: Payment, index: int) -> dict:
    return paid_callback(payment.checkout_request_id, amount=AMOUNT, phone=payment.phone,
                         receipt=f"RF{index:08d}")


def burst(gateway: GatewayProcess, bodies: list[dict]) -> dict[int, int | None]:
    """Post every callback from 16 threads; SIGKILL the gateway once KILL_AFTER were acknowledged and a
    receipt is being sent (the first one is held 5 s by a slow Africa's Talking).
    Returns index -> HTTP status (None: no answer, the process was gone)."""
    results: dict[int, int | None] = {}
    acked = threading.Semaphore(0)

    def post(index: int):
        try:
            status = gateway.callback(bodies[index], timeout=10).status_code
        except requests.RequestException:
            status = None
        results[index] = status
        if status == 200:
            acked.release()

    with ThreadPoolExecutor(16) as pool:
        for index in range(len(bodies)):
            pool.submit(post, index)
        for _ in range(KILL_AFTER):
            assert acked.acquire(timeout=30), "the gateway stopped acknowledging before the kill"
        wait_for(lambda: sending_now() >= 1, timeout=20)
        gateway.kill9()
    return results


def counts_by_phone(messages: list[dict]) -> Counter:
    return Counter(m["to"].lstrip("+") for m in messages if m["message"].startswith("Lipa receipt"))


def test_kill9_mid_burst_then_restart_and_replay(db_url, sim, tmp_path):
    open_database(db_url)
    with db.connection_context():
        payments = seed(BURST + STORED_ONLY)
    bodies = [body_for(p, i) for i, p in enumerate(payments[:BURST])]
    gateway = GatewayProcess(database_url=db_url, daraja_url=sim.daraja_url, at_url=sim.at_url, env={
        "LIPA_JOB_PROCESS_INBOX_S": "1", "LIPA_JOB_DISPATCH_NOTIFICATIONS_S": "1",
        "LIPA_NOTIFY_LEASE_S": "2", "LIPA_NOTIFY_BACKOFF_S": "0.2"})
    try:
        sim.at.set_fault("sms", "slow", 1)  # the first receipt is still in flight at the kill
        gateway.start()
        results = burst(gateway, bodies)
        with db.connection_context():
            left = Counter(row.status for row in InboxMessage.select(InboxMessage.status))
            sending = Notification.select().where(Notification.status == "SENDING").count()
            for index, payment in enumerate(payments[BURST:], start=BURST):  # what a kill right after the
                inbox.store("daraja.stk", dumps(body_for(payment, index)))  # commit and the 200 leaves
        print(f"at the kill: inbox {dict(left)}, notifications SENDING {sending}, "
              f"acknowledged {sum(s == 200 for s in results.values())}/{BURST}")
        assert sending >= 1

        gateway.start()  # same port, same database
        replay = [i for i in range(BURST) if results.get(i) != 200]
        again = [i for i in range(BURST) if results.get(i) == 200][:10]  # Daraja re-sends some it got a 200 for
        for index in replay + again:
            assert gateway.callback(bodies[index]).status_code == 200, index
        wait_for(lambda: all_settled(len(payments)), timeout=40, interval=0.2)
        check_exactly_once(payments, sim)
    finally:
        print(gateway.log_tail())
        gateway.cleanup()


def sending_now() -> int:
    with db.connection_context():
        return Notification.select().where(Notification.status == "SENDING").count()


def all_settled(count: int) -> bool:
    with db.connection_context():
        completed = Payment.select().where(Payment.status == "COMPLETED").count()
        unapplied = InboxMessage.select().where(InboxMessage.status == "RECEIVED").count()
        sent = Notification.select().where(Notification.kind == "payment_completed",
                                           Notification.status == "SENT").count()
        busy = Notification.select().where(Notification.status.in_(["QUEUED", "SENDING"])).count()
    return completed == count and unapplied == 0 and sent == count and busy == 0


def check_exactly_once(payments: list[Payment], sim) -> None:
    with db.connection_context():
        ids = [p.id for p in payments]
        completions = Counter(e.payment_id for e in PaymentEvent.select().where(
            PaymentEvent.kind == "transition", PaymentEvent.to_status == "COMPLETED"))
        assert completions == Counter(ids), "every payment completed exactly once"
        assert PaymentEvent.select().where(PaymentEvent.to_status == "COMPLETED",
                                           PaymentEvent.from_status != "PROCESSING").count() == 0
        applied = Counter(r.payment_id for r in InboxMessage.select().where(InboxMessage.status == "APPLIED"))
        assert applied == Counter(ids), "one callback applied per payment; the rest absorbed"
        others = {r.status for r in InboxMessage.select().where(InboxMessage.status != "APPLIED")}
        assert others <= {"DUPLICATE"}, others
        receipts = list(Notification.select().where(Notification.kind == "payment_completed"))
        assert Counter(n.payment_id for n in receipts) == Counter(ids), "one receipt row per payment"
        requeued = {n.recipient for n in receipts if n.attempts > 1}
        assert len({p.mpesa_receipt for p in Payment.select()}) == len(ids)
    per_phone = counts_by_phone(sim.at.messages_for())
    assert set(per_phone) == {p.phone for p in payments}, "every customer got the receipt"
    twice = {phone for phone, n in per_phone.items() if n > 1}
    print(f"receipts sent again after a claim died: {len(requeued)}; phones that got one twice: {len(twice)}")
    assert all(per_phone[phone] == 2 for phone in twice)
    assert twice <= requeued and len(twice) <= SENDERS_PER_PROCESS, (twice, requeued)
