"""The sweeps, called directly: expire-pending against the Daraja simulator, stuck alerts,
request expiry, retention. Time is moved by writing timestamps in the past, never by sleeping."""
from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.jobs import runner, sweeps
from gateway.providers.daraja.client import DarajaClient, StkQueryResult
from gateway.providers.daraja.token_store import DbTokenStore
from gateway.payments.requests import create_request
from gateway.payments.service import initiate, send_push
from gateway.payments.transitions import record
from shared.config import SANDBOX_PASSKEY, SANDBOX_SHORTCODE
from shared.models import (
    Alert,
    InboxMessage,
    JobRun,
    Notification,
    Payment,
    PaymentEvent,
    PaymentRequest,
    UssdSession,
)
from shared.timeutil import utcnow
from tests.conftest import QuietDispatcher
from tests.test_stk_callback import paid_body, post

PHONE = "254708374149"
DEAD_URL = "http://127.0.0.1:9"


def fast_daraja(base_url: str) -> DarajaClient:
    """The real client, without retries or real sleeps (tests must not wait)."""
    return DarajaClient(base_url=base_url, consumer_key="local-key", consumer_secret="local-secret",
                        shortcode=SANDBOX_SHORTCODE, passkey=SANDBOX_PASSKEY, token_store=DbTokenStore(),
                        max_retries=0, sleep=lambda s: None)


@pytest.fixture
def gw(sim, make_app):
    """The gateway on the simulators; callbacks go to a dead port, so only the test delivers them."""
    app = make_app(daraja=fast_daraja(sim.daraja_url), dispatcher=QuietDispatcher(), config_overrides={
        "mpesa_base_url": sim.daraja_url, "at_base_url": sim.at_url, "public_url": DEAD_URL})
    return app


@pytest.fixture
def services(gw, conn):
    return gw.extensions["lipa"]


def sweep(services, **kw):
    return sweeps.expire_pending(daraja=services.daraja, config=services.config, sleep=lambda s: None, **kw)


def age(payment, seconds: float) -> Payment:
    """Pretend the payment was created (and last changed) ``seconds`` ago."""
    past = utcnow() - timedelta(seconds=seconds)
    Payment.update(created_at=past, updated_at=past).where(Payment.id == payment.id).execute()
    return Payment.get_by_id(payment.id)


def pushed(services, sim, amount=500, phone=PHONE, outcome=None, decided=True, ago=130) -> Payment:
    """A PROCESSING payment whose push the simulator accepted; ``decided`` is what the query will see."""
    sim.daraja.set_outcome(phone, outcome)
    payment = initiate(phone=phone, amount=amount, account="ACC42", channel="api")
    payment = send_push(payment.id, daraja=services.daraja, callback_url=services.stk_callback_url)
    assert payment.status == "PROCESSING"
    sim.daraja.find(payment.checkout_request_id).decided_at = float("-inf" if decided else "inf")
    return age(payment, ago)


def fresh(payment) -> Payment:
    return Payment.get_by_id(payment.id)


def transitions(payment) -> list[tuple]:
    return [(e.to_status, e.actor, e.reason) for e in PaymentEvent.select().where(
        PaymentEvent.payment == payment.id, PaymentEvent.kind == "transition").order_by(PaymentEvent.id)]


def test_missing_callback_query_says_paid_completes_with_receipt_pending(services, sim):
    payment = pushed(services, sim, amount=55)  # no_callback: only the query knows
    counts = sweep(services)
    assert counts["queried"] == 1 and counts["completed"] == 1
    done = fresh(payment)
    assert (done.status, done.mpesa_receipt, done.result_code) == ("COMPLETED", None, "0")
    assert "receipt" in done.status_message and done.active_phone is None
    assert transitions(payment)[-1] == ("COMPLETED", "sweep", sweeps.RECEIPT_PENDING)
    assert Notification.get(Notification.payment == payment.id).kind == "payment_confirmed"


@pytest.mark.parametrize("outcome,status,words", [
    ("cancelled", "CANCELLED", "cancelled"), ("insufficient", "FAILED", "Not enough money"),
])
def test_query_refusals_map_to_status_and_plain_words(services, sim, outcome, status, words):
    payment = pushed(services, sim, outcome=outcome)
    counts = sweep(services)
    assert counts[status.lower()] == 1
    done = fresh(payment)
    assert done.status == status and words in done.status_message
    assert transitions(payment)[-1][:2] == (status, "sweep")


def test_still_processing_stays_until_the_hard_limit_then_expires(services, sim):
    payment = pushed(services, sim, amount=55, decided=False)
    assert sweep(services)["left"] == 1
    assert fresh(payment).status == "PROCESSING"
    later = utcnow() + timedelta(seconds=services.config.stk_hard_limit_s)
    assert sweep(services, now=later)["expired"] == 1
    assert fresh(payment).status == "EXPIRED"


def test_young_payments_are_not_queried(services, sim):
    payment = pushed(services, sim, ago=5)
    assert sweep(services)["queried"] == 0
    assert fresh(payment).status == "PROCESSING"


def test_late_callback_after_expiry_completes_it(gw, services, sim):
    payment = pushed(services, sim, amount=55, decided=False, ago=services.config.stk_hard_limit_s + 10)
    assert sweep(services)["expired"] == 1
    body = paid_body(amount=55, receipt="LATE123456", checkout=payment.checkout_request_id)
    assert post(gw.test_client(), gw, body).status_code == 200
    done = fresh(payment)
    assert (done.status, done.mpesa_receipt) == ("COMPLETED", "LATE123456")
    assert Alert.get(Alert.payment == payment.id).kind == "late_payment"


def test_callback_after_query_completion_fills_the_receipt(gw, services, sim):
    payment = pushed(services, sim, amount=55)
    sweep(services)
    body = paid_body(amount=55, receipt="RCPT000001", checkout=payment.checkout_request_id)
    assert post(gw.test_client(), gw, body).status_code == 200
    done = fresh(payment)
    assert (done.status, done.mpesa_receipt) == ("COMPLETED", "RCPT000001")
    assert "RCPT000001" in done.status_message
    assert InboxMessage.get().status == "APPLIED"
    assert PaymentEvent.get(PaymentEvent.payment == payment.id, PaymentEvent.kind == "receipt")
    assert not Alert.select().exists()
    assert post(gw.test_client(), gw, body).status_code == 200  # the same callback again: a duplicate
    assert InboxMessage.select().order_by(InboxMessage.id.desc()).get().status == "DUPLICATE"


@pytest.mark.parametrize("fault", ["spike_arrest", "internal"])
def test_daraja_refusing_changes_nothing(services, sim, fault):
    first, second = pushed(services, sim, amount=55), pushed(services, sim, amount=55, phone="254708374150")
    sim.daraja.set_fault("stk_query", fault, count=5)
    counts = sweep(services)
    assert counts["left"] == 2 and counts["completed"] == 0
    assert {fresh(first).status, fresh(second).status} == {"PROCESSING"}


def test_spike_arrest_stops_the_run_early(services, sim):
    pushed(services, sim, amount=55), pushed(services, sim, amount=55, phone="254708374150")
    sim.daraja.set_fault("stk_query", "spike_arrest", count=1)
    assert sweep(services)["queried"] == 1  # the second query waits for the next run


def test_daraja_unreachable_run_recorded_ok_with_left(services, sim):
    payment = pushed(services, sim, amount=55)
    services.daraja = fast_daraja(DEAD_URL)  # refused connections: nothing ever reaches Daraja
    run = runner.run_job("expire-pending", services, worker="t")
    assert (run.outcome, run.counts["left"], run.counts["queried"]) == ("OK", 1, 1)
    assert fresh(payment).status == "PROCESSING"


def test_pauses_between_queries(services, sim):
    pushed(services, sim, amount=55), pushed(services, sim, amount=55, phone="254708374150")
    slept = []
    sweeps.expire_pending(daraja=services.daraja, config=services.config, sleep=slept.append, pause_s=0.5)
    assert slept == [0.5]


def test_a_run_stops_querying_when_its_time_budget_is_spent(services, sim):
    pushed(services, sim, amount=55), pushed(services, sim, amount=55, phone="254708374150")
    counts = sweep(services, budget_s=0)
    assert (counts["queried"], counts["completed"], counts["left"]) == (1, 1, 1)


class CallbackFirst:
    """A Daraja whose query answer arrives after a success callback was applied."""

    def __init__(self, gw, payment):
        self.gw, self.payment = gw, payment

    def stk_query(self, checkout_request_id):
        body = paid_body(amount=self.payment.amount, receipt="CB00000001", checkout=checkout_request_id)
        post(self.gw.test_client(), self.gw, body)
        return StkQueryResult("1032", "Request cancelled by user", False, {})


def test_callback_between_select_and_update_is_never_downgraded(gw, services, sim):
    payment = pushed(services, sim, amount=55)
    counts = sweeps.expire_pending(daraja=CallbackFirst(gw, payment), config=services.config, sleep=lambda s: None)
    assert counts["decided"] == 1 and counts["cancelled"] == 0
    done = fresh(payment)
    assert (done.status, done.mpesa_receipt) == ("COMPLETED", "CB00000001")


def test_pending_ambiguous_push_expires_and_a_late_callback_still_completes(gw, services, sim):
    sim.daraja.set_fault("stk_push", "garbage")
    payment = initiate(phone=PHONE, amount=77, account="ACC42", channel="ussd")
    send_push(payment.id, daraja=services.daraja, callback_url=services.stk_callback_url)
    assert PaymentEvent.get(PaymentEvent.payment == payment.id, PaymentEvent.kind == "stk_unknown")
    age(payment, 130)
    assert sweep(services)["unconfirmed"] == 1
    assert (fresh(payment).status, transitions(payment)[-1][2]) == ("EXPIRED", sweeps.NEVER_CONFIRMED)
    post(gw.test_client(), gw, paid_body(amount=77, receipt="AMB0000001", checkout="ws_CO_unseen"))
    assert (fresh(payment).status, fresh(payment).mpesa_receipt) == ("COMPLETED", "AMB0000001")


def test_pending_never_pushed_fails_without_a_late_push(services, sim):
    payment = age(initiate(phone=PHONE, amount=100, account="ACC42", channel="ussd"), 130)
    assert sweep(services)["never_sent"] == 1
    assert (fresh(payment).status, transitions(payment)[-1][2]) == ("FAILED", sweeps.NEVER_SENT)
    assert sim.daraja.requests_log() == []
    assert fresh(payment).active_phone is None  # the phone may pay again


def test_pending_with_a_push_in_flight_is_left_alone_until_the_timeout(services, sim):
    payment = initiate(phone=PHONE, amount=100, account="ACC42", channel="ussd")
    record(payment, "stk_request", actor="stk-push")
    assert sweep(services)["unconfirmed"] == 0
    age(payment, 130)
    assert sweep(services)["unconfirmed"] == 1


def make_payment(status="PROCESSING", ref="LPSTUCK01", ago=1000, **kw) -> Payment:
    past = utcnow() - timedelta(seconds=ago)
    return Payment.create(reference=ref, phone=PHONE, amount=10, account="ACC", channel="api", status=status,
                          created_at=past, updated_at=past, **kw)


def test_stuck_payment_alerts_once_per_stuck_spell(services):
    payment = make_payment()
    make_payment(status="COMPLETED", ref="LPDONE001")
    make_payment(ref="LPYOUNG01", ago=10)
    config = services.config
    assert sweeps.stuck_payments(config=config) == {"alerted": 1}
    assert sweeps.stuck_payments(config=config) == {"alerted": 0}
    alert = Alert.get(Alert.payment == payment.id)
    assert alert.kind == "stuck_payment" and payment.reference in alert.message
    Alert.update(acknowledged=True).execute()
    assert sweeps.stuck_payments(config=config) == {"alerted": 0}  # seen, and nothing changed since
    Payment.update(updated_at=utcnow()).where(Payment.id == payment.id).execute()
    assert sweeps.stuck_payments(config=config) == {"alerted": 1}


def test_refund_pending_is_stuck_by_its_last_change(services):
    payment = make_payment(status="REFUND_PENDING", ago=100_000)
    Payment.update(updated_at=utcnow()).where(Payment.id == payment.id).execute()
    assert sweeps.stuck_payments(config=services.config) == {"alerted": 0}
    assert sweeps.stuck_payments(config=services.config, now=utcnow() + timedelta(hours=1)) == {"alerted": 1}


def test_expire_requests_queues_the_merchant_webhook(services):
    hooked = create_request(amount=100, account="BILL1", expires_in=60, callback_url="https://shop.example/hook")
    plain = create_request(amount=100, account="BILL2", expires_in=60)
    forever = create_request(amount=100, account="BILL3")
    later = utcnow() + timedelta(seconds=61)
    assert sweeps.expire_requests(now=later) == {"expired": 2, "waiting": 0, "decided": 0}
    assert [PaymentRequest.get_by_id(r.id).status for r in (hooked, plain, forever)] == ["EXPIRED", "EXPIRED", "OPEN"]
    hook = Notification.get(Notification.channel == "webhook")
    assert (hook.kind, hook.recipient, hook.request_id) == ("payment_request.expired", "https://shop.example/hook",
                                                            hooked.id)
    assert sweeps.expire_requests(now=later)["expired"] == 0


def test_a_request_being_paid_waits_for_its_payment(services):
    req = create_request(amount=100, account="BILL1", expires_in=60)
    initiate(phone=PHONE, amount=100, account="BILL1", channel="ussd", request=req)
    assert sweeps.expire_requests(now=utcnow() + timedelta(seconds=61))["waiting"] == 1
    assert PaymentRequest.get_by_id(req.id).status == "OPEN"


def test_retention_deletes_working_data_and_keeps_history(services):
    old = utcnow() - timedelta(days=31)
    payment = make_payment(status="COMPLETED", ago=40 * 86400)
    record(payment, "note", actor="test")
    PaymentEvent.update(created_at=old).execute()
    UssdSession.create(session_id="old", phone=PHONE, created_at=old, updated_at=old, payment=payment)
    UssdSession.create(session_id="new", phone=PHONE)
    kept_inbox = [InboxMessage.create(source="daraja.stk", body="{}", status="RECEIVED", received_at=old),
                  InboxMessage.create(source="daraja.stk", body="{}", status="APPLIED")]
    alerted = InboxMessage.create(source="daraja.stk", body="{}", status="FLAGGED", received_at=old)
    Alert.create(kind="unknown_callback", message="?", inbox=alerted)
    gone = InboxMessage.create(source="daraja.stk", body="{}", status="APPLIED", received_at=old, payment=payment)
    Notification.create(channel="sms", kind="payment_completed", payment=payment, recipient=PHONE, body="x",
                        created_at=old)
    JobRun.create(job="retention", worker="w", started_at=utcnow() - timedelta(days=91))
    JobRun.create(job="retention", worker="w", started_at=utcnow() - timedelta(days=89))

    counts = sweeps.retention(config=services.config, batch=1)
    assert counts == {"ussd_sessions": 1, "inbox_messages": 1, "job_runs": 1}
    assert [s.session_id for s in UssdSession.select()] == ["new"]
    assert {m.id for m in InboxMessage.select()} == {kept_inbox[0].id, kept_inbox[1].id, alerted.id}
    assert InboxMessage.get_or_none(InboxMessage.id == gone.id) is None
    assert Payment.select().count() == 1 and PaymentEvent.select().count() == 1
    assert Notification.select().count() == 1 and Alert.select().count() == 1
    assert JobRun.select().count() == 1
