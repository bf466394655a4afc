"""Money for a closed bill or an unknown account is kept, flagged, alerted, audited, then refunded or held."""
import pytest

from gateway.payments import unexpected
from gateway.payments.requests import create_request, set_request_status
from gateway.payments.transitions import transition
from shared.db import write_tx
from shared.models import Alert, AuditLog, Payment, PaymentEvent, PaymentRequest
from tests import test_c2b
from tests.factories import c2b_body, confirm
from tests.factories import make_payment, paid_body, post

build, lipa = test_c2b.build, test_c2b.lipa  # the wired-app fixtures, shared

REFUND_SERVICE = "gateway.refunds.service.request_refund"


def closed_request(status: str) -> PaymentRequest:
    req = create_request(amount=10, account="INV42")
    with write_tx():
        if status == "PAID":
            paid = make_payment(status="COMPLETED", amount=10, ref="LPFIRST01", checkout="ws_CO_first",
                                mpesa_receipt="FIRST00001", request=req)
            set_request_status(req, "PAID", payment=paid)
        else:
            set_request_status(req, status)
    return req


@pytest.fixture
def fake_refunds(monkeypatch):
    """A stand-in for the refund service, so these tests do not depend on it being written yet."""
    calls = []

    def request_refund(payment, amount, reason, *, requested_by):
        calls.append((payment.id, amount, reason, requested_by))
        fresh = Payment.get_by_id(payment.id)  # a service that re-reads the row, as real ones do
        transition(fresh, "REFUND_PENDING", actor=requested_by, reason=reason)

    monkeypatch.setattr(REFUND_SERVICE, request_refund)  # what create_app wires into the payment hooks
    return calls


@pytest.mark.parametrize("status", ["EXPIRED", "CANCELLED", "PAID"])
def test_c2b_for_a_closed_request_is_kept_flagged_alerted_audited(lipa, status):
    req = closed_request(status)
    confirm(lipa, c2b_body(BillRefNumber=req.code))
    payment = Payment.get(Payment.channel == "c2b")
    assert payment.status == "COMPLETED" and payment.flagged and payment.request_id == req.id
    assert f"which is {status}" in payment.flag_reason and "held for staff" in payment.flag_reason
    assert ("double payment" in payment.flag_reason) == (status == "PAID")
    assert PaymentRequest.get_by_id(req.id).status == status
    alert = Alert.get(Alert.kind == "unexpected_money")
    assert alert.payment_id == payment.id
    audit = AuditLog.get()
    assert (audit.actor, audit.action, audit.target_type, audit.target_id) == (
        "system", "unexpected_money", "payment", str(payment.id))
    assert audit.details["outcome"] == "held" and audit.details["receipt"] == "RKTQDM7W6S"


def test_stk_payment_for_a_cancelled_request_goes_the_same_way(lipa):
    req = closed_request("CANCELLED")
    payment = make_payment(request=req)
    post(lipa.test_client(), lipa, paid_body())
    fresh = Payment.get_by_id(payment.id)
    assert fresh.status == "COMPLETED" and fresh.flagged and AuditLog.select().count() == 1


def test_auto_refund_requests_the_refund(build, fake_refunds):
    app = build(auto_refund=True)
    req = closed_request("EXPIRED")
    confirm(app, c2b_body(BillRefNumber=req.code))
    payment = Payment.get(Payment.channel == "c2b")
    [(payment_id, amount, reason, by)] = fake_refunds
    assert (payment_id, amount, by) == (payment.id, 10, "auto-refund") and "EXPIRED" in reason
    assert payment.status == "REFUND_PENDING" and payment.flagged  # not overwritten by a stale copy
    assert "automatic refund requested" in payment.flag_reason
    assert AuditLog.get().details["outcome"] == "refund_requested"


def test_auto_refund_without_a_refund_service_holds_with_a_note(build):
    app = build(auto_refund=True)
    app.extensions["lipa"].hooks.request_refund = None  # an app that wired no refund service
    confirm(app, c2b_body(BillRefNumber="bad account!"))
    payment = Payment.get()
    assert payment.status == "COMPLETED" and "auto-refund unavailable" in payment.flag_reason
    assert AuditLog.get().details["outcome"] == "held"


def test_auto_refund_failure_keeps_the_money_held(build, monkeypatch):
    def request_refund(payment, amount, reason, *, requested_by):
        Payment.update(status="REFUNDED").where(Payment.id == payment.id).execute()  # undone by the savepoint
        raise RuntimeError("reversal service down")

    monkeypatch.setattr(REFUND_SERVICE, request_refund)
    app = build(auto_refund=True)
    confirm(app, c2b_body(BillRefNumber="bad account!"))
    payment = Payment.get()
    assert payment.status == "COMPLETED" and "auto-refund failed" in payment.flag_reason
    assert PaymentEvent.select().where(PaymentEvent.kind == "auto_refund_failed").count() == 1
    assert AuditLog.get().details["outcome"] == "held"


def test_auto_refund_off_holds_even_with_the_module(build, fake_refunds):
    app = build(auto_refund=False)
    confirm(app, c2b_body(BillRefNumber="bad account!"))
    assert fake_refunds == [] and Payment.get().status == "COMPLETED"
    assert AuditLog.get().details["outcome"] == "held"


def test_unconfigured_handler_holds(lipa):
    lipa.extensions["lipa"].hooks.config = None
    payment = make_payment(status="COMPLETED", mpesa_receipt="R1")
    with write_tx():
        assert unexpected.handle_unexpected(payment, "test") == "held"
    assert Payment.get_by_id(payment.id).flag_reason == "test; held for staff"


def test_auto_refund_is_really_sent_by_the_process_inbox_job(build, sim):
    """The real refund service: requested inside the payment's transaction, sent after it by the job."""
    from gateway.refunds.service import send_unsent_refunds
    from shared.models import Refund

    app = build(auto_refund=True, mpesa_base_url=sim.daraja_url)
    req = closed_request("CANCELLED")
    confirm(app, c2b_body(BillRefNumber=req.code, TransAmount="10.00"))
    [refund] = Refund.select()
    assert (refund.status, refund.requested_by, refund.amount) == ("INITIATED", "auto-refund", 10)
    assert send_unsent_refunds(app.extensions["lipa"], older_than_s=0) == 1
    assert Refund.get_by_id(refund.id).status == "PROCESSING"
    assert send_unsent_refunds(app.extensions["lipa"], older_than_s=0) == 0
