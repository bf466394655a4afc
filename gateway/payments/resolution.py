"""Resolving a payment by hand, with evidence: staff say why, and a completion needs M-Pesa's word.

COMPLETED is never set on a staff member's say-so: it opens a verification of the receipt given
(Transaction Status, payments/verification.py) and the payment completes only when M-Pesa confirms
that receipt for the payment's amount. REFUND_PENDING and REFUNDED belong to refund records
(gateway/refunds/). Every other change goes through the state machine; each leaves an audit row
and an event carrying who, why and the evidence.
"""
from __future__ import annotations

from shared.db import locked, write_tx
from shared.errors import InvalidInput, InvalidTransition, NotAllowed, NotFound
from shared.models import AuditLog, Payment, Verification
from shared.states import PAID, PaymentStatus, can_transition

from .transitions import record, transition
from .verification import COMPLETE_PAYMENT, REQUESTED, check_receipt, request_verification

S = PaymentStatus
REFUND_STATES = (S.REFUND_PENDING.value, S.REFUNDED.value)
PAID_STATES = {s.value for s in PAID}
NO_RECEIPT = "Resolving to COMPLETED needs the M-Pesa receipt, which is then checked with M-Pesa."


def target_status(value) -> str:
    """The status asked for, checked; the refund states are refused here (a refund record moves them)."""
    target = str(value or "").strip().upper()
    if target not in {s.value for s in S}:
        raise InvalidInput(f"status must be one of {', '.join(s.value for s in S)}.", code="invalid_status")
    if target in REFUND_STATES:
        raise NotAllowed(f"{target} is reached only through a refund (POST /api/v1/payments/<id>/refund).",
                         code="refund_only")
    return target


def moves_money(payment: Payment, data: dict) -> bool:
    """A resolution that makes a payment paid or takes a paid one away (checked first: bad input is a 400)."""
    target = target_status(data.get("status"))
    if target == S.COMPLETED.value:
        if data.get("receipt") in (None, ""):
            raise InvalidInput(NO_RECEIPT, code="receipt_required")
        check_receipt(data["receipt"])
        return True
    return payment.status in PAID_STATES


def resolve(payment_id: int, *, status, reason: str, receipt=None, actor: str):
    """Carry out a manual resolution; answers ("payment", Payment) or ("verification", Verification)."""
    target = target_status(status)
    if target == S.COMPLETED.value:
        return "verification", _ask_completion(payment_id, reason=reason, receipt=receipt, actor=actor)
    with write_tx():
        payment = locked_payment(payment_id)
        previous = payment.status
        evidence = {"from": previous, "to": target, "reason": reason, "by": actor}
        transition(payment, target, actor=actor, reason=reason, payload=evidence,
                   message=f"Resolved by staff as {target}.")
        AuditLog.create(actor=actor, action="resolve", target_type="payment", target_id=str(payment.id),
                        reason=reason[:500], details={"from": previous, "to": target})
    return "payment", payment


def _ask_completion(payment_id: int, *, reason: str, receipt, actor: str) -> Verification:
    if receipt in (None, ""):
        raise InvalidInput(NO_RECEIPT, code="receipt_required")
    receipt = check_receipt(receipt)
    with write_tx():
        payment = locked_payment(payment_id)
        if not can_transition(payment.status, S.COMPLETED):
            raise InvalidTransition(f"A {payment.status} payment cannot become COMPLETED.")
        owner = Payment.select(Payment.id).where(Payment.mpesa_receipt == receipt, Payment.id != payment.id).first()
        if owner is not None:
            raise NotAllowed(f"Receipt {receipt} already belongs to payment {owner.id}.", code="receipt_in_use")
        if Verification.select().where(Verification.payment == payment, Verification.state == REQUESTED).exists():
            raise NotAllowed("A verification for this payment is already open.", code="verification_open")
        v = request_verification(receipt=receipt, amount=payment.amount, purpose=COMPLETE_PAYMENT,
                                 requested_by=actor, reason=reason, payment=payment)
        AuditLog.create(actor=actor, action="resolve_requested", target_type="payment", target_id=str(payment.id),
                        reason=reason[:500], details={"from": payment.status, "to": S.COMPLETED.value,
                                                      "receipt": receipt, "verification_id": v.id})
        record(payment, "resolve_requested", actor=actor, reason=reason[:255],
               payload={"receipt": receipt, "verification_id": v.id, "by": actor})
    return v


def locked_payment(payment_id: int) -> Payment:
    """Re-read inside a write transaction, row-locked on PostgreSQL; a 404 when there is none."""
    try:
        return locked(Payment, payment_id)
    except Payment.DoesNotExist:
        raise NotFound(f"There is no payment {payment_id}.") from None
