"""Refunds of COMPLETED or SETTLED payments: request, send to Daraja (reversal or B2C), cancel.

One refund is in flight per payment (the payment is REFUND_PENDING meanwhile); partial refunds follow
one another up to the amount paid.

Sending is never repeated automatically. When Daraja's answer is ambiguous (timeout, unreadable) the
refund stays INITIATED with the reason recorded and an alert: a reversal sent twice could move money
twice. Staff check the M-Pesa portal, then either cancel_refund() or call send_refund() again: for B2C
the same OriginatorConversationID goes again, so Daraja treats it as the same request; a repeated
reversal of an already reversed receipt is answered R000001, which is applied as completed but flagged.
"""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from shared.db import locked, retry_locked, write_tx
from shared.errors import InvalidInput, LipaError, NotAllowed
from shared.models import Payment, Refund
from shared.money import format_kes, parse_amount
from shared.phone import is_normalized
from shared.states import PaymentStatus
from shared.timeutil import utcnow

from ..providers.daraja.b2c import B2C_MIN, b2c_payment, reversal
from ..payments.transitions import raise_alert, transition
from ..providers.daraja.credential import initiator_for
from .results import apply_result, apply_timeout
from .steps import (
    CANCELLED,
    INITIATED,
    PROCESSING,
    audit,
    fail,
    in_flight_total,
    notify,
    payment_back,
    record_step,
    save,
)

log = logging.getLogger(__name__)
S = PaymentStatus
METHODS = ("reversal", "b2c")
SENDING = "SENDING"  # result_code while a send is on its way (a lease, so two senders never both send)
SEND_LEASE = timedelta(minutes=2)

__all__ = ["apply_result", "apply_timeout", "cancel_refund", "request_refund", "send_refund"]


def _reason(reason) -> str:
    text = " ".join(str(reason or "").split())
    if not text:
        raise InvalidInput("A reason is required.", code="reason_required")
    return text[:255]


def _checked(amount, reason, method) -> tuple[int, str, str]:
    """Whole shillings, a reason, a known method (B2C pays at least KES 10)."""
    amount = parse_amount(amount)
    method = method or "reversal"
    if method not in METHODS:
        raise InvalidInput(f"Refund method must be one of {', '.join(METHODS)}.", code="invalid_method")
    if method == "b2c" and amount < B2C_MIN:
        raise InvalidInput(f"A B2C refund must be at least {format_kes(B2C_MIN)}.", code="invalid_amount")
    return amount, _reason(reason), method


def _check_refundable(payment: Payment, amount: int, method: str) -> None:
    """Only money Lipa holds, only once, only what is left."""
    if payment.status == S.REFUND_PENDING.value:
        raise NotAllowed(f"A refund of payment {payment.reference} is already in progress.", code="refund_in_progress")
    if payment.status not in (S.COMPLETED.value, S.SETTLED.value):
        raise NotAllowed(f"Only a completed or settled payment can be refunded; {payment.reference} is "
                         f"{payment.status}.", code="not_refundable")
    refundable = payment.amount - payment.refunded_amount - in_flight_total(payment)
    if amount > refundable:
        raise InvalidInput(f"At most {format_kes(max(refundable, 0))} of payment {payment.reference} can be "
                           f"refunded.", code="amount_exceeds_refundable")
    if method == "reversal" and not payment.mpesa_receipt:
        raise NotAllowed(f"Payment {payment.reference} has no M-Pesa receipt to reverse.", code="no_receipt")
    if method == "b2c" and not is_normalized(payment.phone or ""):
        raise NotAllowed(f"Payment {payment.reference} has no phone number to pay back.", code="no_phone")


@retry_locked
def request_refund(payment: Payment, amount, reason, *, requested_by: str, method: str | None = None) -> Refund:
    """Create an INITIATED refund and put the payment in REFUND_PENDING (send it with send_refund).

    ``method`` defaults to reversal; callers pass config.refund_method to follow LIPA_REFUND_METHOD."""
    amount, reason, method = _checked(amount, reason, method)
    with write_tx():
        payment = locked(Payment, payment.id)
        _check_refundable(payment, amount, method)
        refund = Refund.create(payment=payment, amount=amount, reason=reason, requested_by=requested_by,
                               method=method, originator_conversation_id=f"LIPA-RF-{uuid.uuid4().hex[:20]}")
        event = transition(payment, S.REFUND_PENDING, actor=requested_by, reason=f"refund {refund.id}: {reason}",
                           message=f"Refund of {format_kes(amount)} in progress.")
        notify(payment, refund, event)
        record_step(refund, payment, requested_by, f"{format_kes(amount)} by {method}: {reason}")
        audit(requested_by, "refund_requested", refund, reason)
    log.info("refund %s of %s for %s requested by %s", refund.id, format_kes(amount), payment.reference,
             requested_by)
    return refund


def send_refund(refund_id: int, *, daraja, config, result_url: str, timeout_url: str,
                actor: str = "refund-sender") -> Refund:
    """Send an INITIATED refund to Daraja, outside any transaction: PROCESSING when accepted,
    FAILED when refused, still INITIATED (reason recorded, alert) when the answer is ambiguous."""
    refund = Refund.get_by_id(refund_id)
    if refund.status != INITIATED or not _claim(refund, actor):
        return refund
    payment = Payment.get_by_id(refund.payment_id)
    try:
        answer = _call(refund, payment, daraja, config, result_url, timeout_url)
    except LipaError as exc:
        return _refused(refund_id, exc, actor)
    return _accepted(refund_id, answer, actor)


def _call(refund: Refund, payment: Payment, daraja, config, result_url: str, timeout_url: str):
    """The Daraja request for the refund's method."""
    initiator = initiator_for(config)
    common = {"initiator": initiator, "amount": refund.amount, "result": result_url, "timeout": timeout_url,
              "remarks": f"Refund {payment.reference}: {refund.reason}"[:100], "occasion": f"Refund {refund.id}"}
    if refund.method == "b2c":
        return b2c_payment(daraja, originator_conversation_id=refund.originator_conversation_id,
                           party_a=config.mpesa_shortcode, party_b=payment.phone, **common)
    return reversal(daraja, transaction_id=payment.mpesa_receipt, receiver_party=config.mpesa_shortcode, **common)


@retry_locked
def _claim(refund: Refund, actor: str) -> bool:
    """Compare-and-set SENDING (a lease), so two callers given the same refund send it once."""
    now = utcnow()
    with write_tx():
        claimed = Refund.update(result_code=SENDING, updated_at=now).where(
            Refund.id == refund.id, Refund.status == INITIATED,
            Refund.result_code.is_null() | (Refund.result_code != SENDING) | (Refund.updated_at < now - SEND_LEASE),
        ).execute()
        if claimed:
            record_step(refund, Payment.get_by_id(refund.payment_id), actor, f"sending to M-Pesa by {refund.method}")
        return bool(claimed)


@retry_locked
def _accepted(refund_id: int, answer, actor: str) -> Refund:
    with write_tx():
        refund = locked(Refund, refund_id)
        payment = locked(Payment, refund.payment_id)
        was, known = refund.status, refund.conversation_id
        if was != INITIATED:  # its Result came first, or staff cancelled while it was being sent
            save(refund, conversation_id=answer.conversation_id,
                 result_code=None if refund.result_code == SENDING else refund.result_code)
            record_step(refund, payment, actor, f"accepted by M-Pesa after it was {was}", answer.raw)
            if known != answer.conversation_id:
                raise_alert("refund_late_accept", f"Refund {refund.id} of {payment.reference} was {was} but M-Pesa "
                            f"accepted it ({answer.conversation_id})", payment=payment)
            return refund
        save(refund, conversation_id=answer.conversation_id, result_code=None, status=PROCESSING)
        record_step(refund, payment, actor, f"accepted by M-Pesa ({answer.conversation_id})", answer.raw)
        notify(payment, refund)
    return refund


@retry_locked
def _refused(refund_id: int, exc: LipaError, actor: str) -> Refund:
    code = getattr(exc, "error_code", None) or exc.code
    payload = {"error": type(exc).__name__, "code": code, "message": exc.message}
    with write_tx():
        refund = locked(Refund, refund_id)
        if refund.status != INITIATED:
            return refund
        if not getattr(exc, "ambiguous", False):
            fail(refund, exc.message, actor=actor, payload=payload, result_code=str(code)[:32])
            return refund
        note = f"No clear answer from M-Pesa ({exc.message}); check the M-Pesa portal before resending or cancelling."
        save(refund, result_code=None, result_desc=note[:255])
        payment = Payment.get_by_id(refund.payment_id)
        record_step(refund, payment, actor, note, payload)
        raise_alert("refund_unknown", f"Refund {refund.id} of {payment.reference}: {note}", payment=payment)
    return refund


@retry_locked
def cancel_refund(refund: Refund, *, staff, reason) -> Refund:
    """Cancel a refund M-Pesa has not accepted (INITIATED); the payment goes back as it was."""
    actor = staff if isinstance(staff, str) else f"staff:{staff.username}"
    reason = _reason(reason)
    with write_tx():
        refund = locked(Refund, refund.id)
        if refund.status != INITIATED:
            raise NotAllowed(f"Only a refund not yet accepted by M-Pesa can be cancelled; refund {refund.id} is "
                             f"{refund.status}.", code="refund_not_cancellable")
        if refund.result_code == SENDING and refund.updated_at >= utcnow() - SEND_LEASE:
            raise NotAllowed(f"Refund {refund.id} is being sent to M-Pesa right now; try again in a minute.",
                             code="refund_sending")
        save(refund, status=CANCELLED, result_desc=f"Cancelled by {actor}: {reason}"[:255])
        payment = locked(Payment, refund.payment_id)
        event = payment_back(payment, refund, f"cancelled: {reason}", actor, "Refund cancelled; the payment stands.")
        notify(payment, refund, event)
        record_step(refund, payment, actor, reason)
        audit(actor, "refund_cancelled", refund, reason)
    return refund


def send_unsent_refunds(services, *, older_than_s: float = 5.0, limit: int = 20) -> int:
    """Send INITIATED refunds never attempted (e.g. automatic refunds, requested inside the payment's
    own transaction); a refund whose send was attempted and left unclear is for staff, not resent."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    ids = [r.id for r in Refund.select(Refund.id).where(
        Refund.status == INITIATED, Refund.result_code.is_null(), Refund.conversation_id.is_null(),
        Refund.result_desc == "", Refund.created_at <= cutoff).order_by(Refund.id).limit(limit)]
    for refund_id in ids:
        send_refund(refund_id, daraja=services.daraja, config=services.config,
                    result_url=services.result_url, timeout_url=services.timeout_url)
    return len(ids)
