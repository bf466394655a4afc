"""Confirming a reconciliation exception: a statement line is not M-Pesa's word, Transaction Status is.

An admin's confirm opens a verification of the line's receipt (or one they give) for the line's
amount; only when M-Pesa confirms it does the matched payment complete (through the state machine)
or, for money no payment holds, a flagged COMPLETED payment get recorded for it. The exception is
then resolved with who, why and the evidence. A receipt M-Pesa does not know leaves it open.
"""
from __future__ import annotations

from shared.db import for_update, write_tx
from shared.errors import InvalidInput, NotAllowed
from shared.models import AuditLog, Payment, ReconException, StatementLine, Verification
from shared.states import PaymentStatus as S

from ..payments import verification
from ..payments.received import Received, record_received
from ..payments.transitions import flag
from ..payments.verification import CONFIRM_EXCEPTION, REQUESTED, request_verification
from .common import _resolve, open_exception

ACTOR = "reconciliation"


def confirm_exception(exc_id: int, *, staff: str, reason: str, receipt=None) -> Verification:
    """Open the verification (the caller sends it after commit); refused when nothing can be verified."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why in a reason to confirm an exception.", code="missing_field")
    with write_tx():
        row = open_exception(exc_id)
        line = StatementLine.get_or_none(StatementLine.id == row.line_id) if row.line_id else None
        payment = Payment.get_or_none(Payment.id == row.payment_id) if row.payment_id else None
        receipt = receipt or (line.receipt if line else None)
        if not receipt:
            raise InvalidInput("This exception has no statement receipt; give the M-Pesa receipt.",
                               code="receipt_required")
        if Verification.select().where(Verification.target_id == str(row.id), Verification.purpose ==
                                       CONFIRM_EXCEPTION, Verification.state == REQUESTED).exists():
            raise NotAllowed("A verification for this exception is already open.", code="verification_open")
        amount = line.amount if line else payment.amount
        v = request_verification(receipt=receipt, amount=amount, purpose=CONFIRM_EXCEPTION, requested_by=staff,
                                 reason=reason, payment=payment, target_id=str(row.id))
        AuditLog.create(actor=staff, action="recon_confirm_requested", target_type="recon_exception",
                        target_id=str(row.id), reason=reason[:500],
                        details={"receipt": v.receipt, "amount": amount, "verification_id": v.id})
    return v


def on_confirmed(v: Verification, payload, complete_payment) -> str | None:
    """M-Pesa confirmed the receipt: complete or record the money, resolve the exception; else why not."""
    row = for_update(ReconException.select().where(ReconException.id == int(v.target_id))).first()
    if row is None or row.status != "OPEN":
        return f"exception {v.target_id} is no longer open."
    if v.payment_id:
        payment = Payment.get_by_id(v.payment_id)
        if payment.status != S.COMPLETED.value or payment.mpesa_receipt != v.receipt:
            why = complete_payment(v, payload)
            if why:
                return why
    else:
        owner = Payment.select(Payment.id).where(Payment.mpesa_receipt == v.receipt).first()
        if owner is not None:
            return f"receipt {v.receipt} already belongs to payment {owner.id}."
        payment = _record_money(v, row)
    _resolve(row, v.requested_by, f"confirmed by M-Pesa Transaction Status (receipt {v.receipt}): {v.reason}")
    return None


def _record_money(v: Verification, row: ReconException) -> Payment:
    """Money M-Pesa confirms that no payment holds: a flagged COMPLETED payment, linked to its line."""
    line = StatementLine.get_or_none(StatementLine.id == row.line_id) if row.line_id else None
    evidence = {"verification_id": v.id, "receipt": v.receipt, "exception_id": row.id, "by": v.requested_by}
    payment = record_received(Received(
        amount=v.amount, receipt=v.receipt, account=line.account if line else "", actor=ACTOR,
        created_reason=f"exception {row.id} confirmed by {v.requested_by}", created_payload=evidence,
        completed_reason=f"confirmed by Transaction Status: {v.reason}", description="Statement",
        status_message="Found on the statement.", completed_by=f"transaction-status:{v.requested_by}"[:64],
        completed_at=line.completed_at if line is not None else None, payload=evidence))
    flag(payment, f"money found on a statement only, confirmed by M-Pesa (receipt {v.receipt})", actor=ACTOR,
         alert_kind="recon_missing_in_lipa")
    if line is not None:
        line.payment = payment
        line.save()
    row.payment = payment
    return payment


def on_verified(v: Verification, payload) -> str | None:
    """The CONFIRM_EXCEPTION purpose of a verification (wired into the app's hooks by create_app)."""
    return on_confirmed(v, payload, verification.complete_payment)
