"""Refund steps shared by requesting, sending, cancelling and applying results; each runs inside the
caller's write transaction. Every step writes a "refund" PaymentEvent so the payment timeline shows it.

SMS: the payment transitions queue refund_initiated / refund_completed / refund_failed through the
PaymentNotifier, which knows only the payment (its amount, and REFUND_PENDING -> COMPLETED always reads
"refund failed"). notify() rewrites that row for the refund: its amount, and the right kind for a
partial refund or a cancellation, so each step queues exactly one SMS, keyed refund:<id>:<status>.
"""
from __future__ import annotations

import logging

from shared.db import locked
from shared.models import AuditLog, Payment, PaymentEvent, PhonePreference, Refund
from shared.money import format_kes
from shared.states import PaymentStatus
from shared.timeutil import utcnow

from ..notify import outbox
from ..texts.notify import render
from ..payments.transitions import raise_alert, record, transition

log = logging.getLogger(__name__)
S = PaymentStatus
INITIATED, PROCESSING, COMPLETED, FAILED, CANCELLED = "INITIATED", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"
IN_FLIGHT = (INITIATED, PROCESSING)
SMS_KINDS = {INITIATED: "refund_initiated", PROCESSING: "refund_processing", COMPLETED: "refund_completed",
             FAILED: "refund_failed", CANCELLED: "refund_cancelled"}


def in_flight_total(payment: Payment) -> int:
    """Shillings of this payment's refunds not yet decided (INITIATED or PROCESSING)."""
    rows = Refund.select(Refund.amount).where(Refund.payment == payment, Refund.status.in_(IN_FLIGHT))
    return sum(row.amount for row in rows)


def previous_status(payment: Payment) -> PaymentStatus:
    """What the payment was before its latest REFUND_PENDING (COMPLETED or SETTLED), from its events."""
    event = (PaymentEvent.select().where(PaymentEvent.payment == payment, PaymentEvent.kind == "transition",
                                         PaymentEvent.to_status == S.REFUND_PENDING.value)
             .order_by(PaymentEvent.id.desc()).first())
    return S.SETTLED if event and event.from_status == S.SETTLED.value else S.COMPLETED


def record_step(refund: Refund, payment: Payment, actor: str, note: str, payload=None) -> None:
    """The refund step on the payment's timeline."""
    record(payment, "refund", actor=actor, reason=f"refund {refund.id} {refund.status}: {note}", payload=payload)


def audit(actor: str, action: str, refund: Refund, reason: str, **details) -> None:
    AuditLog.create(actor=actor, action=action, target_type="refund", target_id=str(refund.id),
                    reason=reason[:500], details={"payment_id": refund.payment_id, "amount": refund.amount,
                                                  "method": refund.method, **details})


def save(refund: Refund, **fields) -> None:
    for name, value in fields.items():
        setattr(refund, name, value)
    refund.updated_at = utcnow()
    refund.save()


def notify(payment: Payment, refund: Refund, event: PaymentEvent | None = None) -> None:
    """One SMS for the refund's current status, with the refund's amount (see the module docstring)."""
    if not payment.phone:
        return
    kind, key = SMS_KINDS[refund.status], f"refund:{refund.id}:{refund.status}"
    pref = PhonePreference.get_or_none(PhonePreference.phone_hash == payment.phone)
    lang = pref.language if pref else (payment.language or "en")
    text = render(kind, lang, amount=refund.amount, account=payment.account, ref=payment.reference)
    outbox.enqueue(channel="sms", kind=kind, recipient=payment.phone, body=text, payment=payment,
                   language=lang, dedupe_key=key)


def payment_back(payment: Payment, refund: Refund, note: str, actor: str, message: str) -> PaymentEvent | None:
    """REFUND_PENDING -> what it was before (COMPLETED or SETTLED); None when it has moved on already."""
    if payment.status != S.REFUND_PENDING.value:
        return None
    return transition(payment, previous_status(payment), actor=actor, reason=f"refund {refund.id}: {note}",
                      message=message)


def fail(refund: Refund, reason: str, *, actor: str, payload=None, result_code: str | None = None) -> None:
    """Refund FAILED: the payment goes back, nothing was refunded, the customer and staff are told."""
    save(refund, status=FAILED, result_desc=reason[:255], result_code=result_code)
    payment = locked(Payment, refund.payment_id)
    event = payment_back(payment, refund, f"failed: {reason}", actor, "Refund failed; the payment stands.")
    notify(payment, refund, event)
    record_step(refund, payment, actor, reason, payload)
    raise_alert("refund_failed", f"Refund {refund.id} of {format_kes(refund.amount)} for {payment.reference} "
                f"failed: {reason}", payment=payment)


def complete(refund: Refund, *, actor: str, result_code: str, result_desc: str, transaction_id: str,
             payload=None, move_payment: bool = True) -> Payment:
    """Refund COMPLETED: count the money; REFUNDED when all of it is back, else the payment goes back
    (move_payment=False only counts it: a late result while the payment has moved on)."""
    save(refund, status=COMPLETED, result_code=result_code, result_desc=result_desc[:255],
         transaction_id=transaction_id[:32] or None)
    payment = locked(Payment, refund.payment_id)
    total = payment.refunded_amount + refund.amount
    event = None
    if not move_payment or payment.status != S.REFUND_PENDING.value:
        payment.refunded_amount = total
        payment.save()
    elif total >= payment.amount:
        event = transition(payment, S.REFUNDED, actor=actor, reason=f"refund {refund.id}: completed",
                           message=f"Refunded {format_kes(total)}.", refunded_amount=total)
    else:
        event = transition(payment, previous_status(payment), actor=actor, reason=f"refund {refund.id}: completed",
                           message=f"Refunded {format_kes(total)} of {format_kes(payment.amount)}.",
                           refunded_amount=total)
    notify(payment, refund, event)
    record_step(refund, payment, actor, f"{result_code}: {result_desc} ({transaction_id or 'no id'})", payload)
    audit(actor, "refund_completed", refund, result_desc or "completed", refunded_total=total)
    log.info("refund %s of %s completed (%s refunded in all)", refund.id, payment.reference, total)
    return payment
