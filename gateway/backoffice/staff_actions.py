"""The staff actions on one payment: re-query, resend the receipt, retry, refund, resolve by hand.

The one home of what each action does (its transaction, its transition or event, its AuditLog row, its
outbox key); api/routes_payments only parses the request and renders the answer. No Flask here: who acts
comes in as ``actor``, and work that goes out after the answer (an STK push, a refund's B2C call) is left to
the caller, which owns the background tasks. In backoffice/ rather than payments/ because an action composes
payments with refunds and four-eyes approvals, which themselves import payments. The re-query applies its
answer with the expire-pending sweep's own rule (jobs.sweeps.apply_query), passed in by the caller:
importing jobs/ from here would close a loop through the channels back to backoffice."""
from __future__ import annotations

from collections.abc import Callable

from shared.db import write_tx
from shared.errors import NotAllowed, NotFound, ProviderError
from shared.models import Approval, AuditLog, Notification, Payment, Refund
from shared.phone import mask_phone
from shared.states import PaymentStatus
from shared.timeutil import utcnow

from ..notify import outbox
from ..notify.preferences import language_for
from ..payments import resolution
from ..payments import service as payments
from ..payments.resolution import locked_payment
from ..payments.transitions import record
from ..refunds import service as refunds
from ..texts.notify import render
from . import approvals

S = PaymentStatus
MAX_ID = 2**31 - 1
RECEIPTED = (S.COMPLETED.value, S.SETTLED.value)


def load_payment(payment_id: int) -> Payment:
    """The payment, or a 404 (an id past the column's range is one too, never a database error)."""
    payment = Payment.get_or_none(Payment.id == payment_id) if 0 < payment_id <= MAX_ID else None
    if payment is None:
        raise NotFound(f"There is no payment {payment_id}.")
    return payment


def audit(actor: str, action: str, target_id, *, reason: str = "", details=None,
          target_type: str = "payment") -> AuditLog:
    """Who did what and why; the caller holds the transaction."""
    return AuditLog.create(actor=actor, action=action, target_type=target_type, target_id=str(target_id),
                           reason=reason[:500], details=details)


def audit_phone_search(actor: str, staff_id, phone: str) -> None:
    """A viewer's search by phone, audited with the phone masked (each one unmasks a guess)."""
    with write_tx():
        audit(actor, "phone_search", staff_id, target_type="staff", details={"phone": mask_phone(phone)})


def requery(payment_id: int, *, daraja, apply_query: Callable, hard_limit_s: int, actor: str,
            reason: str) -> tuple[dict, str]:
    """Ask M-Pesa how the push ended, now, and apply the answer as the expire-pending sweep would
    (PROCESSING only, so never a downgrade). Answers (the query, what was applied); a provider error is
    recorded on the timeline and the audit log, then raised."""
    payment = load_payment(payment_id)
    if not payment.checkout_request_id:
        raise NotAllowed("This payment has no M-Pesa CheckoutRequestID to query.", code="nothing_to_query")
    try:
        answer = daraja.stk_query(payment.checkout_request_id)
    except ProviderError as exc:
        _record_query(payment_id, actor, reason, {"error": exc.code, "message": exc.message}, "query failed")
        raise
    query = {"result_code": answer.result_code, "result_desc": answer.result_desc, "pending": answer.pending}
    applied = str(apply_query(payment_id, answer, hard_limit_s, utcnow()))
    _record_query(payment_id, actor, reason, {**query, "raw": answer.raw}, applied)
    return query, applied


def _record_query(payment_id: int, actor: str, reason: str, details: dict, outcome: str) -> None:
    with write_tx():
        payment = locked_payment(payment_id)
        code = details.get("result_code") or details.get("error") or "-"
        record(payment, "stk_query", actor=actor, reason=f"STK query by staff: {code} ({outcome})", payload=details)
        audit(actor, "requery", payment_id, reason=reason, details={**details, "outcome": outcome})


def resend_receipt(payment_id: int, *, actor: str, reason: str) -> tuple[Payment, Notification]:
    """Queue the receipt SMS again (even to a phone that sent STOP: staff were asked for it)."""
    load_payment(payment_id)
    with write_tx():
        payment = locked_payment(payment_id)
        if payment.status not in RECEIPTED:
            raise NotAllowed(f"A {payment.status} payment has no receipt to send.", code="no_receipt")
        note = _queue_receipt(payment)
        record(payment, "receipt_resent", actor=actor, reason=f"receipt SMS queued again (#{note.id})")
        audit(actor, "resend_receipt", payment.id, reason=reason, details={"notification_id": note.id})
    return payment, note


def _queue_receipt(payment: Payment) -> Notification:
    """A fresh outbox key per resend (resend:<id>:<n>), so a second resend is a second message."""
    lang = language_for(payment.phone, payment.language)
    body = render("payment_completed", lang, amount=payment.amount, account=payment.account,
                  ref=payment.reference, receipt=payment.mpesa_receipt or "")
    n = Notification.select().where(Notification.payment == payment).count() + 1
    return outbox.enqueue(channel="sms", kind="payment_completed", recipient=payment.phone, body=body,
                          payment=payment, language=lang, dedupe_key=f"resend:{payment.id}:{n}",
                          respect_opt_out=False)


def retry(payment_id: int, *, actor: str, reason: str) -> Payment:
    """A new payment linked to a failed, cancelled or expired one; the caller sends its push."""
    original = load_payment(payment_id)
    fresh = payments.retry(original, actor=actor)
    with write_tx():
        record(original, "retried", actor=actor, reason=f"retried as {fresh.reference}")
        audit(actor, "retry", original.id, reason=reason,
              details={"new_payment_id": fresh.id, "reference": fresh.reference})
    return fresh


def refund(payment_id: int, amount, reason: str, *, actor: str, config) -> Approval | Refund:
    """Start a refund, or over LIPA_FOUR_EYES_OVER park it for a second admin (an Approval). The caller
    sends a Refund to Daraja in the background."""
    payment = load_payment(payment_id)
    if isinstance(amount, int) and approvals.over_limit(config, amount):
        return _park("refund", payment, amount, reason, actor, {"amount": amount, "method": config.refund_method})
    row = refunds.request_refund(payment, amount, reason, requested_by=actor, method=config.refund_method)
    with write_tx():
        audit(actor, "refund", payment.id, reason=reason, details={"refund_id": row.id, "amount": row.amount})
    return row


def resolve(payment_id: int, data: dict, reason: str, *, actor: str, config) -> tuple[str, object]:
    """Resolve by hand with evidence: ("approval", Approval) over the four-eyes limit when it moves money,
    else what resolution.resolve answers (("verification", Verification) or ("payment", Payment))."""
    payment = load_payment(payment_id)
    if approvals.over_limit(config, payment.amount) and resolution.moves_money(payment, data):
        return "approval", _park("resolve", payment, payment.amount, reason, actor,
                                 {"status": resolution.target_status(data["status"]), "receipt": data.get("receipt")})
    return resolution.resolve(payment_id, status=data["status"], reason=reason, receipt=data.get("receipt"),
                              actor=actor)


def _park(action: str, payment: Payment, amount: int, reason: str, actor: str, params: dict) -> Approval:
    return approvals.request_approval(action=action, payment=payment, amount=amount, params=params,
                                      reason=reason, requested_by=actor)
