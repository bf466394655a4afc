"""STK callbacks: parse strictly, then apply idempotently. Money received is never dropped."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from shared import safejson
from shared.db import for_update, retry_locked, skip_locked, write_tx
from shared.db.prepared import Prepared
from shared.errors import InvalidInput
from shared.models import LateCallback, Payment
from shared.money import provider_amount
from shared.phone import mask_phone, normalize_phone
from shared.states import ACTIVE, FINAL_UNPAID, PAID, PaymentStatus
from shared.text import clean
from shared.timeutil import parse_nairobi_timestamp, utcnow

from ..ingest import inbox
from ..payments.transitions import flag, raise_alert, record, transition
from ..providers.daraja.result_codes import UNKNOWN_KIND, is_success, lookup

log = logging.getLogger(__name__)
ACTOR = "daraja-callback"
LATE_KIND = "late_callback"  # the alert (and flag) of a success callback held to verify
TO_VERIFY = "late success callback: to verify by STK query"
S = PaymentStatus
# Run for every callback (built once: see shared.db.prepared).
_BY_CHECKOUT = Prepared(lambda p: for_update(Payment.select().where(Payment.checkout_request_id == p[0])),
                        Payment.checkout_request_id)
# A batch's look-up (mpesa.batches): a payment another transaction holds is skipped, not waited for.
_BY_CHECKOUT_UNLESS_HELD = Prepared(lambda p: skip_locked(Payment.select()
                                                          .where(Payment.checkout_request_id == p[0])),
                                    Payment.checkout_request_id)
_EXISTS = Prepared(lambda p: Payment.select(Payment.id).where(Payment.checkout_request_id == p[0]),
                   Payment.checkout_request_id)
_BY_RECEIPT = Prepared(lambda p: Payment.select(Payment.id, Payment.reference).where(Payment.mpesa_receipt == p[0]),
                       Payment.mpesa_receipt)


@dataclass(frozen=True)
class StkResult:
    checkout_request_id: str
    merchant_request_id: str
    result_code: str
    result_desc: str
    amount: int | None = None
    raw_amount: object = None
    receipt: str | None = None
    phone: str | None = None
    transaction_date: object = None
    raw: dict | None = field(default=None, compare=False, repr=False)  # the whole body, for the event payload


def parse_stk_callback(body: bytes | str) -> StkResult:
    """Check the documented shape (raise InvalidInput naming what is wrong), then read every field."""
    data, cb, items = _checked(body)
    raw_amount = items.get("Amount")
    return StkResult(
        checkout_request_id=cb["CheckoutRequestID"], merchant_request_id=str(cb.get("MerchantRequestID") or "")[:64],
        result_code=str(cb["ResultCode"]).strip()[:32], result_desc=clean(cb.get("ResultDesc"), 255),
        amount=provider_amount(raw_amount) if raw_amount is not None else None, raw_amount=raw_amount,
        receipt=_text(items.get("MpesaReceiptNumber")), phone=_phone(items.get("PhoneNumber")),
        transaction_date=parse_nairobi_timestamp(items.get("TransactionDate")), raw=data,
    )


def check_stk_callback(body: bytes | str) -> None:
    """What the view asks before storing: raise InvalidInput exactly where parse_stk_callback would. Reading
    the fields (the phone through libphonenumber, the timestamp) can never fail and is left to the batch that
    applies it: a third of an acknowledgement's CPU."""
    _checked(body)


def _checked(body: bytes | str) -> tuple[dict, dict, dict]:
    """The body as JSON, its stkCallback and its metadata items by name, once the shape is as documented."""
    try:
        data = safejson.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("Body is not JSON.", code="malformed_callback") from None
    body_obj = data.get("Body") if isinstance(data, dict) else None
    cb = body_obj.get("stkCallback") if isinstance(body_obj, dict) else None
    if not isinstance(cb, dict):
        raise InvalidInput("Body.stkCallback is missing.", code="malformed_callback")
    checkout = cb.get("CheckoutRequestID")
    code = cb.get("ResultCode")
    if not isinstance(checkout, str) or not checkout or len(checkout) > 64:
        raise InvalidInput("CheckoutRequestID is missing or invalid.", code="malformed_callback")
    if isinstance(code, bool) or not isinstance(code, (int, str)) or str(code).strip() == "":
        raise InvalidInput("ResultCode is missing or invalid.", code="malformed_callback")
    return data, cb, _metadata(cb)


def _metadata(cb: dict) -> dict:
    """CallbackMetadata items by Name (never by position); items without Value are skipped."""
    meta = cb.get("CallbackMetadata")
    items = meta.get("Item") if isinstance(meta, dict) else None
    if meta is not None and not isinstance(items, list):
        raise InvalidInput("CallbackMetadata.Item must be a list.", code="malformed_callback")
    out = {}
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("Name"), str) and "Value" in item:
            out[item["Name"]] = item["Value"]
    return out


def _text(value) -> str | None:
    return clean(value, 32) or None


def _phone(value) -> str | None:
    try:
        return normalize_phone(str(int(value)) if isinstance(value, (int, float)) else value)
    except (InvalidInput, ValueError, TypeError):
        return None


@retry_locked
def apply_stk_callback(inbox_id: int) -> str:
    """Apply one stored callback (the healing path); returns what happened (APPLIED, DUPLICATE, FLAGGED, REJECTED)."""
    with write_tx():
        row, result, done = inbox.open_row(inbox_id, parse_stk_callback)
        if done:
            return done
        return apply_parsed(row, result)


class PaymentHeld(Exception):
    """The callback's payment is locked by another transaction right now (on PostgreSQL: another drain's
    batch holds a re-send of the same callback). Raised before anything is written for this callback."""


def apply_parsed(row, result: StkResult, *, wait: bool = True, payment: Payment | None = None) -> str:
    """Apply a parsed callback stored as ``row``; the caller holds the write transaction (the view stores and
    applies in one). Idempotent: a re-sent callback finds its payment already moved and changes nothing.

    ``wait=False`` (a batch): a payment that another transaction holds raises PaymentHeld instead of waiting
    for it, so the batch leaves this callback stored for a later one rather than stalling every callback it
    holds behind another drain's whole batch (bench/README.md: drains spent their bursts in lock waits).
    ``payment``: the callback's payment, already locked by the caller in this transaction (a batch locks all
    of its payments in one statement); looked up here when not given."""
    if payment is None:
        payment = _find_payment(result, wait=wait)
    if payment is None:
        inbox.mark(row, "FLAGGED", "unknown CheckoutRequestID")
        raise_alert("unknown_callback",
                    f"Callback for unknown CheckoutRequestID {result.checkout_request_id}", inbox=row)
        return "FLAGGED"
    status, note = (_apply_success if is_success(result.result_code) else _apply_failure)(payment, result, row)
    inbox.mark(row, status, note, payment=payment)
    return status


def _find_payment(result: StkResult, *, wait: bool = True) -> Payment | None:
    """By CheckoutRequestID; else a success whose push timed out (no id) matched by phone and amount."""
    if wait:
        found = _BY_CHECKOUT.first(result.checkout_request_id)
    else:
        found = _BY_CHECKOUT_UNLESS_HELD.first(result.checkout_request_id)
        if found is None and _EXISTS.first(result.checkout_request_id) is not None:
            raise PaymentHeld(result.checkout_request_id)
    if found or not is_success(result.result_code) or not result.phone or result.amount is None:
        return found
    since = utcnow() - timedelta(hours=24)
    candidates = list(for_update(Payment.select().where(
        Payment.checkout_request_id.is_null(), Payment.phone_hash == result.phone, Payment.amount == result.amount,
        Payment.status.in_([S.PENDING.value, S.EXPIRED.value, S.FAILED.value]), Payment.created_at >= since,
    )).limit(2))
    if len(candidates) != 1:
        return None
    payment = candidates[0]
    payment.checkout_request_id = result.checkout_request_id
    payment.save()
    record(payment, "matched", actor=ACTOR,
           reason="callback matched by phone and amount (the push answer was lost)")
    return payment


def _apply_success(payment: Payment, result: StkResult, row) -> tuple[str, str]:
    raw = result.raw
    problem = mismatch(payment, result)
    if problem:
        flag(payment, problem, actor=ACTOR, payload=raw, alert_kind="callback_mismatch")
        return "FLAGGED", problem
    if payment.status == S.COMPLETED.value and not payment.mpesa_receipt:
        return _fill_receipt(payment, result, raw)
    if payment.status in {s.value for s in PAID}:
        if result.receipt == payment.mpesa_receipt:
            return "DUPLICATE", "duplicate success callback"
        reason = f"second success callback with receipt {result.receipt}"
        flag(payment, reason, actor=ACTOR, payload=raw, alert_kind="double_payment")
        return "FLAGGED", reason
    problem = credited_elsewhere(result)
    if problem:
        flag(payment, problem, actor=ACTOR, payload=raw, alert_kind="duplicate_receipt")
        return "FLAGGED", problem
    if payment.status in {s.value for s in FINAL_UNPAID}:
        return _hold_late(payment, result, row)
    transition(payment, S.COMPLETED, actor=ACTOR, reason=result.result_desc or "paid", payload=raw,
               message=f"Paid. M-Pesa receipt {result.receipt}.", mpesa_receipt=result.receipt,
               result_code=result.result_code, result_desc=result.result_desc)
    log.info("payment %s paid by %s", payment.reference, mask_phone(payment.phone))
    return "APPLIED", "completed"


def _hold_late(payment: Payment, result: StkResult, row) -> tuple[str, str]:
    """A success for a payment we already gave up on is a claim, not yet M-Pesa's word (the token travels in a
    URL): keep it to verify by STK query (mpesa.late_success), flag and alert; the money is never dropped."""
    if LateCallback.select().where(LateCallback.payment == payment, LateCallback.receipt == result.receipt).exists():
        return "DUPLICATE", "late success callback already held to verify"
    LateCallback.create(payment=payment, inbox=row, checkout_request_id=result.checkout_request_id,
                        receipt=result.receipt)
    flag(payment, f"{TO_VERIFY} (payment was {payment.status}, receipt {result.receipt})", actor=ACTOR,
         payload=result.raw, alert_kind=LATE_KIND)
    return "FLAGGED", TO_VERIFY


def credited_elsewhere(result: StkResult) -> str:
    """Why the callback's receipt cannot be credited because another payment holds it, or ''."""
    other = _BY_RECEIPT.first(result.receipt)
    return f"receipt {result.receipt} already credited to {other.reference}" if other is not None else ""


def _fill_receipt(payment: Payment, result: StkResult, raw: dict) -> tuple[str, str]:
    """An STK query already completed it (queries carry no receipt): the callback brings the number."""
    reason = credited_elsewhere(result)
    if reason:
        flag(payment, reason, actor=ACTOR, payload=raw, alert_kind="duplicate_receipt")
        return "FLAGGED", reason
    payment.mpesa_receipt = result.receipt
    payment.status_message = f"Paid. M-Pesa receipt {result.receipt}."[:200]
    payment.updated_at = utcnow()
    payment.save()
    record(payment, "receipt", actor=ACTOR, payload=raw,
           reason=f"receipt {result.receipt} from the callback (paid, confirmed earlier by STK query)")
    return "APPLIED", "receipt filled"


def mismatch(payment: Payment, result: StkResult) -> str:
    """Why a success callback must not be credited as it stands, or ''."""
    if not result.receipt:
        return "success callback without MpesaReceiptNumber"
    if result.amount is None or result.amount != payment.amount:
        return f"amount mismatch: callback {result.raw_amount!r}, payment {payment.amount}"
    if result.phone and result.phone != payment.phone:
        return f"phone mismatch: callback {mask_phone(result.phone)}, payment {mask_phone(payment.phone)}"
    return ""


def _apply_failure(payment: Payment, result: StkResult, row) -> tuple[str, str]:
    raw = result.raw
    code = lookup(result.result_code)
    if payment.status in {s.value for s in ACTIVE} and code.undecided:
        return _undecided(payment, result, code, row)
    if payment.status in {s.value for s in ACTIVE}:
        transition(payment, code.status, actor=ACTOR, reason=f"{result.result_code}: {result.result_desc}",
                   payload=raw, message=code.words, result_code=result.result_code, result_desc=result.result_desc)
        return "APPLIED", code.status.value.lower()
    if payment.status in {s.value for s in PAID}:
        record(payment, "callback_ignored", actor=ACTOR, payload=raw,
               reason=f"failure {result.result_code} after success: ignored, never downgraded")
        return "IGNORED", "failure after success"
    return "DUPLICATE", f"payment already {payment.status}"



def _undecided(payment: Payment, result: StkResult, code, row) -> tuple[str, str]:
    """A callback whose code decides nothing (4999, or one not in result_codes): the payment waits for the
    STK query of expire-pending; an unknown code is alerted."""
    record(payment, "callback_undecided", actor=ACTOR, payload=result.raw,
           reason=f"{result.result_code}: {result.result_desc}"[:255] + " (undecided: left as it is)")
    if code.alert:
        raise_alert(UNKNOWN_KIND, f"{payment.reference}: callback ResultCode {code.code} is not a known decision;"
                    f" left {payment.status}", payment=payment, inbox=row)
    return "APPLIED", "undecided"
