"""Verify a success callback that came after the payment was FAILED, CANCELLED or EXPIRED.

The callback token is a URL path segment (it ends up in proxies' logs) and ``MPESA_ALLOWED_IPS`` is empty by
default, so such a callback is a claim, not yet M-Pesa's word. callbacks.py stores it (inbox first, as every
callback), acknowledges it, flags and alerts the payment, and keeps a LateCallback row "to verify". Here an STK
query for its CheckoutRequestID decides: ResultCode 0 completes the payment with the callback's receipt (after
the same amount, phone and receipt checks as any success); a failure leaves the payment as it is and the alert
says the callback was contradicted; an unreachable or undecided Daraja leaves the row to verify, and the
``expire-pending`` job asks again on its next run. The stored callback is never pruned while the row exists.
"""
from __future__ import annotations

import logging
import time

from shared.db import for_update, retry_locked, write_tx
from shared.models import InboxMessage, LateCallback, Payment
from shared.states import PAID, PaymentStatus
from shared.timeutil import utcnow

from ..ingest import inbox
from ..payments.transitions import flag, raise_alert, record, transition
from ..providers.daraja.errors import DarajaError, InvalidRequest, stops_polling
from ..providers.daraja.result_codes import is_success, lookup
from .callbacks import credited_elsewhere, mismatch, parse_stk_callback

log = logging.getLogger(__name__)
ACTOR = "late-callback-check"
TO_VERIFY, CONFIRMED, CONTRADICTED, DECIDED = "TO_VERIFY", "CONFIRMED", "CONTRADICTED", "DECIDED"
COUNTS = ("late_confirmed", "late_contradicted", "late_left")
CONTRADICTED_KIND = "late_callback_contradicted"


def pending_for_inbox(inbox_id: int) -> LateCallback | None:
    """The row still to verify that this stored callback created, if any (the view verifies it at once)."""
    return LateCallback.get_or_none(LateCallback.inbox == inbox_id, LateCallback.status == TO_VERIFY)


def verify_soon(late_id: int, *, daraja) -> str:
    """Background task right after the callback: one try; a Daraja error leaves it for expire-pending."""
    try:
        return verify(late_id, daraja=daraja)
    except DarajaError as exc:
        log.warning("late callback %d: STK query failed (%s); expire-pending asks again", late_id, exc.code)
        return "late_left"


def verify_due(daraja, counts: dict, *, sleep=time.sleep, pause_s: float = 0.25, limit: int = 50,
               deadline: float | None = None) -> None:
    """expire-pending's part: verify every row still TO_VERIFY, least recently tried first, one query at a time;
    stop on a throttled or unreachable Daraja (the rest wait for the next run)."""
    ids = [row.id for row in LateCallback.select(LateCallback.id).where(LateCallback.status == TO_VERIFY)
           .order_by(LateCallback.updated_at, LateCallback.id).limit(limit)]
    for index, late_id in enumerate(ids):
        if index:
            if deadline is not None and time.monotonic() > deadline:
                counts["late_left"] += len(ids) - index
                return
            sleep(pause_s)
        try:
            counts[verify(late_id, daraja=daraja)] += 1
        except DarajaError as exc:
            counts["late_left"] += 1
            if stops_polling(exc):
                counts["late_left"] += len(ids) - index - 1
                return


def verify(late_id: int, *, daraja) -> str:
    """Ask M-Pesa about one held callback and apply the answer; the counts key of what happened. Raises the
    DarajaError of a query that got no usable answer (the attempt is noted on the row)."""
    late = LateCallback.get_by_id(late_id)
    if late.status != TO_VERIFY:
        return "decided"
    try:
        answer = daraja.stk_query(late.checkout_request_id)
    except InvalidRequest as exc:
        if "checkoutrequestid" not in exc.message.lower():
            _note_attempt(late_id, f"query refused: {exc.message}")
            raise
        return _apply(late_id, None, f"M-Pesa does not know CheckoutRequestID {late.checkout_request_id}")
    except DarajaError as exc:
        _note_attempt(late_id, f"query failed: {exc.code}")
        raise
    return _apply(late_id, answer, "")


@retry_locked
def _note_attempt(late_id: int, what: str) -> None:
    with write_tx():
        LateCallback.update(attempts=LateCallback.attempts + 1, last_answer=what[:255], updated_at=utcnow()).where(
            LateCallback.id == late_id).execute()


@retry_locked
def _apply(late_id: int, answer, unknown: str) -> str:
    """Inside one write transaction, the row and its payment locked and re-read: decide or leave."""
    with write_tx():
        late = for_update(LateCallback.select().where(LateCallback.id == late_id)).get()
        if late.status != TO_VERIFY:
            return "decided"
        payment = for_update(Payment.select().where(Payment.id == late.payment_id)).get()
        late.attempts += 1
        late.updated_at = utcnow()
        if payment.status in {s.value for s in PAID}:
            return _already_paid(late, payment)
        if unknown:
            return _contradicted(late, payment, unknown, {"error": unknown})
        row = lookup(answer.result_code) if answer.result_code is not None else None
        if answer.pending or row is None or row.undecided:
            late.last_answer = f"undecided: {answer.result_code or '-'} {answer.result_desc}"[:255]
            late.save()
            return "late_left"
        if is_success(row.code):
            return _confirmed(late, payment, answer)
        return _contradicted(late, payment, f"STK query says {row.code}: {answer.result_desc}", answer.raw)


def _close(late: LateCallback, status: str, what: str) -> None:
    late.status, late.last_answer, late.decided_at = status, what[:255], utcnow()
    late.save()


def _confirmed(late: LateCallback, payment: Payment, answer) -> str:
    """M-Pesa's own query says paid: complete with the callback's receipt, once its details check out."""
    held = InboxMessage.get_by_id(late.inbox_id)
    result = parse_stk_callback(held.body)
    problem = mismatch(payment, result) or credited_elsewhere(result)
    if problem:
        _close(late, DECIDED, f"STK query says paid, but the callback does not check out: {problem}")
        flag(payment, problem, actor=ACTOR, payload=answer.raw, alert_kind="callback_mismatch")
        return "decided"
    previous = payment.status
    transition(payment, PaymentStatus.COMPLETED, actor=ACTOR, payload={"callback": result.raw, "query": answer.raw},
               reason=f"late success callback confirmed by STK query (ResultCode 0); was {previous}",
               message=f"Paid. M-Pesa receipt {result.receipt}.", mpesa_receipt=result.receipt,
               result_code=result.result_code, result_desc=result.result_desc)
    _close(late, CONFIRMED, f"STK query ResultCode 0: {answer.result_desc}")
    inbox.mark(held, "APPLIED", "completed after an STK query confirmed it", payment=payment)
    raise_alert("late_payment", f"{payment.reference} was {previous}; M-Pesa's STK query confirms the late success"
                f" callback ({result.receipt}): completed", payment=payment)
    return "late_confirmed"


def _contradicted(late: LateCallback, payment: Payment, why: str, payload) -> str:
    """M-Pesa says it did not go through: the payment stays as it is; the callback stays stored."""
    _close(late, CONTRADICTED, why)
    record(payment, "late_callback", actor=ACTOR, payload=payload,
           reason=f"success callback (receipt {late.receipt}) contradicted: {why}")
    raise_alert(CONTRADICTED_KIND, f"{payment.reference} stays {payment.status}: a success callback (receipt"
                f" {late.receipt}) was contradicted ({why})", payment=payment, inbox=late.inbox_id)
    return "late_contradicted"


def _already_paid(late: LateCallback, payment: Payment) -> str:
    """Something else (C2B, another callback, staff with a verified receipt) completed it meanwhile."""
    _close(late, DECIDED, f"payment already {payment.status} (receipt {payment.mpesa_receipt or '-'})")
    if payment.mpesa_receipt and payment.mpesa_receipt != late.receipt:
        flag(payment, f"second receipt {late.receipt} in a late callback; paid with {payment.mpesa_receipt}",
             actor=ACTOR, alert_kind="double_payment")
    return "decided"
