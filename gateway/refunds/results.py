"""Daraja's asynchronous Results (reversal, B2C) and queue timeouts: parse strictly, apply idempotently.

A Result is matched to its refund by ConversationID, else OriginatorConversationID (B2C echoes ours),
else, for a reversal whose acceptance we never heard, by OriginalTransactionID (the payment's receipt).
Money that went out is never dropped: a success for a refund we had given up on is counted and flagged.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from shared import safejson
from shared.db import for_update, retry_locked, write_tx
from shared.errors import InvalidInput
from shared.models import Payment, Refund

from ..ingest import inbox
from ..payments.transitions import flag, raise_alert
from .steps import COMPLETED, IN_FLIGHT, complete, fail, save

log = logging.getLogger(__name__)
ACTOR = "daraja-result"
RESULT_SOURCE, TIMEOUT_SOURCE = "daraja.result", "daraja.timeout"
SUCCESS, ALREADY_REVERSED = "0", "R000001"
QUEUE_TIMEOUT = "M-Pesa queue timeout"


@dataclass(frozen=True)
class AsyncResult:
    """One Result (or queue timeout) body, checked."""

    result_code: str
    result_desc: str
    conversation_id: str
    originator_conversation_id: str
    transaction_id: str = ""
    parameters: dict = field(default_factory=dict)

    @property
    def key_id(self) -> str:
        return self.conversation_id or self.originator_conversation_id


def _id(result: dict, name: str) -> str:
    value = result.get(name)
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidInput(f"{name} is invalid.", code="malformed_result")
    return value


def _parameters(result: dict) -> dict:
    """ResultParameters.ResultParameter by Key (Daraja sends a list, or one object)."""
    holder = result.get("ResultParameters")
    items = holder.get("ResultParameter") if isinstance(holder, dict) else None
    items = [items] if isinstance(items, dict) else items
    return {i["Key"]: i.get("Value") for i in items or [] if isinstance(i, dict) and isinstance(i.get("Key"), str)}


def parse_result(body, *, timeout: bool = False) -> AsyncResult:
    """Check {"Result": {...}}; a queue timeout may come without a ResultCode. Raises InvalidInput."""
    try:
        data = safejson.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("Body is not JSON.", code="malformed_result") from None
    result = data.get("Result") if isinstance(data, dict) else None
    if timeout and result is None and isinstance(data, dict):
        result = data
    if not isinstance(result, dict):
        raise InvalidInput("Result is missing.", code="malformed_result")
    conversation, originator = _id(result, "ConversationID"), _id(result, "OriginatorConversationID")
    if not conversation and not originator:
        raise InvalidInput("ConversationID and OriginatorConversationID are missing.", code="malformed_result")
    code = result.get("ResultCode")
    if isinstance(code, bool) or not isinstance(code, (int, str, type(None))) or (
            not timeout and str(code if code is not None else "").strip() == ""):
        raise InvalidInput("ResultCode is missing or invalid.", code="malformed_result")
    return AsyncResult(str(code if code is not None else "").strip()[:32], str(result.get("ResultDesc") or "")[:255],
                       conversation, originator, str(result.get("TransactionID") or "")[:32], _parameters(result))


def dedupe_key(result: AsyncResult, *, timeout: bool = False) -> str:
    """The same Result posted twice is stored once."""
    return f"timeout:{result.key_id}" if timeout else f"result:{result.key_id}:{result.result_code}"


@retry_locked
def apply_result(inbox_id: int) -> str:
    """Apply one stored Result; returns APPLIED, DUPLICATE, FLAGGED or REJECTED."""
    return _apply(inbox_id, timeout=False)


@retry_locked
def apply_timeout(inbox_id: int) -> str:
    """Apply one stored queue timeout: the request never ran, so the refund FAILED."""
    return _apply(inbox_id, timeout=True)


def _apply(inbox_id: int, *, timeout: bool) -> str:
    with write_tx():
        row, result, done = inbox.open_row(inbox_id, lambda body: parse_result(body, timeout=timeout))
        if done:
            return done
        refund = _find_refund(result)
        if refund is None:
            inbox.mark(row, "FLAGGED", "unknown ConversationID")
            raise_alert("unknown_result", f"Daraja result for unknown ConversationID {result.key_id}", inbox=row)
            return "FLAGGED"
        payload = json.loads(row.body)
        status, note = (_timed_out if timeout else _resulted)(refund, result, payload)
        inbox.mark(row, status, note, payment=Payment.get_by_id(refund.payment_id))
        return status


def _find_refund(result: AsyncResult) -> Refund | None:
    """By ConversationID, then OriginatorConversationID, then the reversed receipt (see the docstring)."""
    for column, value in ((Refund.conversation_id, result.conversation_id),
                          (Refund.originator_conversation_id, result.originator_conversation_id)):
        if value:
            found = for_update(Refund.select().where(column == value)).first()
            if found:
                return _adopt(found, result)
    receipt = result.parameters.get("OriginalTransactionID")
    if not receipt:
        return None
    found = for_update(Refund.select().join(Payment).where(
        Payment.mpesa_receipt == str(receipt), Refund.method == "reversal", Refund.status.in_(IN_FLIGHT),
        Refund.conversation_id.is_null())).first()
    return _adopt(found, result) if found else None


def _adopt(refund: Refund, result: AsyncResult) -> Refund:
    """Keep the ConversationID of a refund whose acceptance we never heard."""
    if not refund.conversation_id and result.conversation_id and not Refund.select().where(
            Refund.conversation_id == result.conversation_id).exists():
        save(refund, conversation_id=result.conversation_id)
    return refund


def _timed_out(refund: Refund, result: AsyncResult, payload) -> tuple[str, str]:
    if refund.status not in IN_FLIGHT:
        return "DUPLICATE", f"timeout for a refund already {refund.status}"
    fail(refund, QUEUE_TIMEOUT, actor=ACTOR, payload=payload, result_code=result.result_code or None)
    return "APPLIED", "failed: queue timeout"


def _resulted(refund: Refund, result: AsyncResult, payload) -> tuple[str, str]:
    success = result.result_code in (SUCCESS, ALREADY_REVERSED)
    if refund.status in IN_FLIGHT and success:
        _completed(refund, result, payload)
        return "APPLIED", "completed" if result.result_code == SUCCESS else "already reversed: flagged"
    if refund.status in IN_FLIGHT:
        fail(refund, f"{result.result_code}: {result.result_desc}", actor=ACTOR, payload=payload,
             result_code=result.result_code)
        return "APPLIED", "failed"
    if refund.status == COMPLETED or not success:
        return "DUPLICATE", f"refund already {refund.status}"
    return _late_success(refund, result, payload)


def _completed(refund: Refund, result: AsyncResult, payload) -> None:
    payment = complete(refund, actor=ACTOR, result_code=result.result_code, result_desc=result.result_desc,
                       transaction_id=result.transaction_id, payload=payload)
    if result.result_code == ALREADY_REVERSED:
        flag(payment, f"refund {refund.id}: M-Pesa says the receipt was already reversed ({ALREADY_REVERSED}); "
             "counted as refunded, check the M-Pesa portal", actor=ACTOR, alert_kind="refund_already_reversed")


def _late_success(refund: Refund, result: AsyncResult, payload) -> tuple[str, str]:
    """M-Pesa refunded a refund we had marked FAILED or CANCELLED: count the money, tell staff."""
    was = refund.status
    payment = complete(refund, actor=ACTOR, result_code=result.result_code, result_desc=result.result_desc,
                       transaction_id=result.transaction_id, payload=payload, move_payment=False)
    flag(payment, f"refund {refund.id} was {was} but M-Pesa reports it done ({result.result_code}); "
         "the money went out", actor=ACTOR, alert_kind="late_refund_result")
    return "FLAGGED", f"late success for a {was} refund"
