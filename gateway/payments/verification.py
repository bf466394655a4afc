"""Receipts checked with M-Pesa's Transaction Status before anything moves money on them.

A staff member's word is not evidence: a manual completion (or a reconciliation exception confirmed)
names a receipt, and only M-Pesa's own Result for that receipt and that amount carries it out. The row
is written first (state ``requested``), Daraja is asked outside any transaction, and a request Daraja
never acknowledged is asked again by the process-inbox job (a status query moves no money, so asking
twice is harmless). The Result arrives at the ResultURL and is stored in the inbox before it is applied.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from shared.db import for_update, retry_locked, write_tx
from shared.errors import InvalidInput, LipaError, ProviderError
from shared.models import AuditLog, Payment, Verification
from shared.states import PaymentStatus, can_transition
from shared.timeutil import utcnow

from .transitions import current_hooks, raise_alert, record, transition

log = logging.getLogger(__name__)
REQUESTED, CONFIRMED, REFUSED, ERROR = "requested", "confirmed", "refused", "error"
COMPLETE_PAYMENT, CONFIRM_EXCEPTION = "complete_payment", "confirm_exception"
ACTOR = "transaction-status"


def check_receipt(receipt) -> str:
    """An M-Pesa receipt as staff type it: 8-32 letters and digits, upper-cased."""
    text = str(receipt or "").strip().upper()
    if not (8 <= len(text) <= 32 and text.isascii() and text.isalnum()):
        raise InvalidInput("receipt must be the M-Pesa receipt (8-32 letters and digits).", code="invalid_receipt")
    return text


def request_verification(*, receipt: str, amount: int, purpose: str, requested_by: str, reason: str = "",
                         payment: Payment | None = None, target_id: str = "") -> Verification:
    """Record a receipt to verify for ``amount`` and what to do once M-Pesa confirms it; the caller
    holds the write transaction and sends it (``send_verification``) after commit."""
    if purpose not in purposes():
        raise ValueError(f"unknown verification purpose {purpose!r}")
    return Verification.create(receipt=check_receipt(receipt), amount=amount, purpose=purpose,
                               payment=payment, target_id=str(target_id), requested_by=requested_by,
                               reason=reason[:255])


def verification_json(v: Verification) -> dict:
    return {"id": v.id, "receipt": v.receipt, "amount": v.amount, "purpose": v.purpose,
            "payment_id": v.payment_id, "target_id": v.target_id or None, "state": v.state,
            "requested_by": v.requested_by, "reason": v.reason, "message": v.message,
            "conversation_id": v.conversation_id, "originator_conversation_id": v.originator_conversation_id,
            "result_code": v.result_code}


def send_verification(verification_id: int, *, daraja, config, result_url: str, timeout_url: str) -> Verification:
    """Ask Daraja's Transaction Status; unreachable or ambiguous leaves it requested for process-inbox."""
    from ..providers.daraja.credential import initiator_for

    v = Verification.get_by_id(verification_id)
    if v.state != REQUESTED or v.conversation_id:
        return v
    try:
        answer = daraja.transaction_status(initiator=initiator_for(config), transaction_id=v.receipt,
                                           result_url=result_url, timeout_url=timeout_url,
                                           remarks=f"Verify {v.purpose}"[:100])
    except ProviderError as exc:  # Daraja unreachable, throttled or failing: process-inbox asks again
        log.warning("transaction status for verification %s not sent: %s", v.id, exc.code)
        return _save(verification_id, attempts=v.attempts + 1, message=f"not sent yet: {exc.message}"[:255])
    except LipaError as exc:  # not configured, or a receipt Daraja's rules refuse: asking again cannot help
        return _save(verification_id, attempts=v.attempts + 1, state=ERROR, message=exc.message[:255])
    return _save(verification_id, attempts=v.attempts + 1, conversation_id=answer.conversation_id,
                 originator_conversation_id=answer.originator_conversation_id or None,
                 message="asked M-Pesa; waiting for its Result")


@retry_locked
def _save(verification_id: int, **fields) -> Verification:
    with write_tx():
        v = for_update(Verification.select().where(Verification.id == verification_id)).get()
        for name, value in fields.items():
            setattr(v, name, value)
        v.updated_at = utcnow()
        v.save()
    return v


def result_urls(services) -> dict:
    """The ResultURL and QueueTimeOutURL Daraja posts asynchronous answers to (built in
    gateway/providers/daraja/urls.py, through Services)."""
    return {"result_url": services.result_url, "timeout_url": services.timeout_url}


def submit_verification(services, verification_id: int) -> None:
    """Ask Daraja in the background, after the request's transaction committed (process-inbox retries)."""
    services.tasks.submit(send_verification, verification_id, daraja=services.daraja, config=services.config,
                          **result_urls(services))


def send_unsent_verifications(services, *, older_than_s: float = 5.0, limit: int = 20) -> int:
    """Ask again for requests Daraja never acknowledged (it was unreachable): run by process-inbox."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    ids = [v.id for v in Verification.select(Verification.id).where(
        Verification.state == REQUESTED, Verification.conversation_id.is_null(),
        Verification.updated_at <= cutoff).order_by(Verification.id).limit(limit)]
    for verification_id in ids:
        send_verification(verification_id, daraja=services.daraja, config=services.config, **result_urls(services))
    return len(ids)


def find_verification(result) -> Verification | None:
    """The verification a Transaction Status Result answers, by ConversationID then Originator id."""
    for column, value in ((Verification.conversation_id, result.conversation_id),
                          (Verification.originator_conversation_id, result.originator_conversation_id)):
        if value:
            found = for_update(Verification.select().where(column == value)).first()
            if found:
                return found
    return None


def _whole(value) -> int | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return int(number) if number == number.to_integral_value() else None


def _verdict(v: Verification, result) -> str | None:
    """None when M-Pesa confirms this receipt for this amount; else why not."""
    if result.result_code != "0":
        return f"M-Pesa does not confirm receipt {v.receipt}: {result.result_code} {result.result_desc}".strip()
    params = result.parameters
    receipt = str(params.get("ReceiptNo") or "").upper()
    if receipt and receipt != v.receipt:
        return f"M-Pesa answered for receipt {receipt}, not {v.receipt}."
    if str(params.get("TransactionStatus") or "").lower() != "completed":
        return f"M-Pesa says receipt {v.receipt} is {params.get('TransactionStatus') or 'not completed'}."
    paid = _whole(params.get("Amount"))
    if paid != v.amount:
        return f"M-Pesa says receipt {v.receipt} was for KES {params.get('Amount')}, not KES {v.amount}."
    return None


def apply_result(v: Verification, result, payload, *, timeout: bool = False) -> tuple[str, str]:
    """Apply a stored Result to its verification (caller holds the transaction); (inbox status, note)."""
    if v.state != REQUESTED:
        return "DUPLICATE", f"verification already {v.state}"
    if timeout:
        _finish(v, ERROR, "M-Pesa's queue timed out; ask again.", result)
        return "APPLIED", "verification timed out"
    why = _verdict(v, result)
    if why is None:
        why = purposes()[v.purpose](v, payload)
    if why is not None:
        _finish(v, REFUSED, why, result)
        raise_alert("verification_refused", f"Verification {v.id}: {why}", payment=_payment(v))
        return "APPLIED", "refused"
    _finish(v, CONFIRMED, f"M-Pesa confirmed receipt {v.receipt} for KES {v.amount}.", result)
    return "APPLIED", "confirmed"


def _finish(v: Verification, state: str, message: str, result) -> None:
    v.state, v.message, v.result_code, v.updated_at = state, message[:255], result.result_code or None, utcnow()
    v.save()
    AuditLog.create(actor=ACTOR, action=f"verification_{state}", target_type="verification", target_id=str(v.id),
                    reason=message[:500], details={"receipt": v.receipt, "amount": v.amount, "purpose": v.purpose,
                                                   "payment_id": v.payment_id, "requested_by": v.requested_by})
    payment = _payment(v)
    if payment is not None and state != CONFIRMED:
        record(payment, "verification", actor=ACTOR, reason=message[:255],
               payload={"verification_id": v.id, "state": state, "receipt": v.receipt})


def _payment(v: Verification) -> Payment | None:
    return for_update(Payment.select().where(Payment.id == v.payment_id)).first() if v.payment_id else None


def _complete_payment(v: Verification, payload) -> str | None:
    """The payment completes with the verified receipt, if it still may; None when done, else why not."""
    payment = _payment(v)
    if payment.amount != v.amount:
        return f"the payment is for KES {payment.amount}, not KES {v.amount}."
    if not can_transition(payment.status, PaymentStatus.COMPLETED):
        return f"the payment is {payment.status} now and cannot become COMPLETED."
    owner = Payment.select(Payment.id).where(Payment.mpesa_receipt == v.receipt, Payment.id != payment.id).first()
    if owner is not None:
        return f"receipt {v.receipt} already belongs to payment {owner.id}."
    evidence = {"verification_id": v.id, "receipt": v.receipt, "amount": v.amount, "requested_by": v.requested_by,
                "reason": v.reason, "transaction_status": payload}
    transition(payment, PaymentStatus.COMPLETED, actor=f"{ACTOR}:{v.requested_by}"[:64], payload=evidence,
               reason=f"resolved by hand, verified by Transaction Status: {v.reason}"[:255],
               message="Paid (M-Pesa confirmed the receipt).", mpesa_receipt=v.receipt, result_code="0",
               result_desc="Confirmed by Transaction Status")
    return None


def purposes() -> dict:
    """What a confirmed receipt does, by purpose: completing a payment here; the others (a reconciliation
    exception) are the app's, added to its hooks by create_app, so payments never imports reconciliation."""
    return {COMPLETE_PAYMENT: _complete_payment, **current_hooks().verification_purposes}


def complete_payment(v: Verification, payload) -> str | None:
    """The COMPLETE_PAYMENT purpose, for other purposes that end in a completed payment."""
    return _complete_payment(v, payload)

