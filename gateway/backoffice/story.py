"""A payment's timeline in plain words: what staff read in the desktop's "What happened" column.

Flask-free. The raw rows stay beside each entry (its fields, the payload); only ``summary`` is words:
"M-Pesa confirmed the payment, receipt TNR0286C18" instead of "daraja.stk callback (applied)",
"Refund of KES 200 requested by staff:ops1: customer asked" instead of "refund" four times, and a
statement's own line ("found on M-Pesa statement 1, line 8") where a settlement came from. Unknown kinds
fall back to their name in words, so a new event never shows blank.
"""
from __future__ import annotations

import re

from shared.money import format_kes

SOURCES = {"daraja.stk": "M-Pesa STK callback", "daraja.c2b": "M-Pesa C2B confirmation",
           "daraja.result": "M-Pesa result", "daraja.timeout": "M-Pesa queue time-out",
           "at.sms": "SMS from the customer", "at.delivery": "SMS delivery report"}
CALLBACK_STATES = {"applied": "applied", "received": "received, not applied yet", "rejected": "refused (malformed)",
                   "flagged": "kept for review", "ignored": "ignored (nothing to change)"}
ACTORS = {"daraja-callback": "M-Pesa", "sweep": "the status check", "c2b": "M-Pesa (C2B)", "ussd": "the customer",
          "sms": "the customer", "reconciliation": "the statement import", "api": "a merchant system"}
KINDS = {"payment_completed": "Receipt SMS", "payment_failed": "Failure SMS", "reply": "Reply SMS",
         "payment_settled": "Settled SMS", "refund_initiated": "Refund SMS", "refund_completed": "Refund done SMS",
         "refund_failed": "Refund failed SMS", "webhook_payment_paid": "Merchant webhook (paid)"}
_STATEMENT = re.compile(r"on M-Pesa statement (\d+), line (\d+)")
_REFUND = re.compile(r"^refund (\d+)(?: [A-Z_]+)?: (.*)$", re.S)
_STK_QUERY = re.compile(r"^STK query by staff: (.*) \(([^()]*)\)$", re.S)  # staff_actions._record_query's reason
QUERY_OUTCOMES = {  # what M-Pesa said to a staff member's status check (gateway.jobs.sweeps.apply_query's answers)
    "completed": "M-Pesa says paid; now completed", "failed": "M-Pesa says not paid; now failed",
    "cancelled": "M-Pesa says the customer cancelled; now cancelled",
    "expired": "M-Pesa has no answer past the time limit; now expired",
    "left": "M-Pesa is still waiting for the customer", "decided": "already decided; nothing changed",
}


def who(actor: str | None) -> str:
    """An actor as staff say it: "M-Pesa", "staff:ops1", "the customer"."""
    return ACTORS.get(actor or "", actor or "the gateway")


def refund_amount(reason: str, amounts: dict[int, int]) -> int | None:
    """The amount of the refund a "refund <id>: …" reason names."""
    found = _REFUND.match(reason or "")
    return amounts.get(int(found.group(1))) if found else None


def transition(from_status: str, to_status: str, actor: str, reason: str, *, receipt: str | None = None,
               amount: int | None = None) -> str:
    """A status change in words, naming the evidence where the reason carries it."""
    found = _STATEMENT.search(reason or "")
    if to_status == "PROCESSING":
        return "Sent the M-Pesa prompt to the customer's phone"
    if to_status == "COMPLETED" and from_status == "REFUND_PENDING":
        return f"Refund did not go through; the payment stands ({reason})" if reason else "Refund cancelled"
    if to_status == "COMPLETED":
        evidence = f", receipt {receipt}" if receipt else ""
        if actor.startswith("staff:"):
            return f"Completed by hand by {actor}{evidence}: {reason}"
        return f"{who(actor)} confirmed the payment{evidence}"
    if to_status == "SETTLED":
        if found:
            return f"Settled: found on M-Pesa statement {found.group(1)}, line {found.group(2)}"
        return f"Settled by {who(actor)}" + (f": {reason}" if reason else "")
    if to_status == "REFUND_PENDING":
        refund = _REFUND.match(reason or "")
        words = refund.group(2) if refund else reason
        money = f" of {format_kes(amount)}" if amount else ""
        return f"Refund{money} requested by {who(actor)}" + (f": {words}" if words else "")
    if to_status == "REFUNDED":
        return "Refunded: M-Pesa sent the money back"
    if to_status in ("FAILED", "CANCELLED", "EXPIRED"):
        said = {"FAILED": "Failed", "CANCELLED": "Cancelled", "EXPIRED": "Expired"}[to_status]
        if actor.startswith("staff:"):
            return f"{said} by hand by {actor}: {reason}"
        return f"{said}: {reason}" if reason else f"{said} ({who(actor)})"
    return f"{from_status} → {to_status} by {who(actor)}" + (f": {reason}" if reason else "")


def event(kind: str, actor: str, reason: str) -> str:
    """An event that is not a status change."""
    reason = reason or ""
    if kind == "created":
        return f"Payment created by {who(actor)}" + (f" ({reason})" if reason else "")
    if kind == "refund":
        refund = _REFUND.match(reason)
        return f"Refund #{refund.group(1)}: {refund.group(2)}" if refund else f"Refund: {reason}"
    if kind == "receipt":
        found = _STATEMENT.search(reason)
        return (f"M-Pesa receipt attached from statement {found.group(1)}, line {found.group(2)}" if found
                else f"M-Pesa receipt attached: {reason}")
    if kind == "flag":
        return f"Flagged for review: {reason}"
    if kind == "stk_query":
        return stk_query(actor, reason)
    if kind == "retried" and reason.startswith("retried as "):
        return f"Retried as {reason.removeprefix('retried as ')}"  # not "Retried: retried as …"
    if kind == "flag_review":
        return reason  # "flag cleared: regular customer", as the reviewer's action recorded it
    words = kind.replace("_", " ")
    return f"{words[:1].upper()}{words[1:]}" + (f": {reason}" if reason else "")


def stk_query(actor: str, reason: str) -> str:
    """A staff member's status check as its outcome, short enough for the timeline's column: "Status check by
    staff:ops1: M-Pesa is still waiting for the customer (code 4999)", never "Stk query: STK query by staff: …"."""
    found = _STK_QUERY.match(reason or "")
    if not found:
        return f"Status check by {who(actor)}" + (f": {reason}" if reason else "")
    code, outcome = found.group(1), found.group(2)
    if outcome == "query failed":  # the code is ours (a provider error), not an M-Pesa ResultCode
        return f"Status check by {who(actor)} failed ({code}); nothing changed"
    words = QUERY_OUTCOMES.get(outcome, outcome)
    return f"Status check by {who(actor)}: {words}" + (f" (code {code})" if code not in ("", "-") else "")


def callback(source: str, status: str) -> str:
    state = CALLBACK_STATES.get((status or "").lower(), (status or "").lower())
    return f"{SOURCES.get(source, source)} {state}".strip()


def notification(channel: str, kind: str, status: str, recipient: str, *, attempts: int = 0) -> str:
    """``recipient`` as the caller may see it (serialize masks it for a viewer, shows it to an operator)."""
    to = recipient
    what = KINDS.get(kind, f"{channel.upper() if channel == 'sms' else channel.title()} {kind.replace('_', ' ')}")
    state = status.lower() if not (status == "QUEUED" and attempts) else f"retrying ({attempts} failed)"
    return f"{what} to {to}: {state}"


def refund(refund_id: int, amount: int, requested_by: str, reason: str, status: str) -> str:
    return f"Refund #{refund_id} of {format_kes(amount)} requested by {who(requested_by)}: {reason} — {status.lower()}"


STAFF_ACTIONS = {  # a payment's audit rows as staff say them (the action names stay the API's)
    "requery": "Asked M-Pesa for the payment's status", "retry": "Started a new attempt",
    "resend_receipt": "Resent the receipt SMS", "print_receipt": "Printed the receipt",
    "refund": "Asked for a refund", "refund_requested": "Asked for a refund",
    "refund_completed": "Refund confirmed", "refund_cancelled": "Refund cancelled", "resolve": "Resolved by hand",
    "resolve_requested": "Asked to resolve by hand (waits for a second admin)",
}


def staff_action(action: str, actor: str, reason: str, details: dict | None) -> str:
    """"Started a new attempt (staff:ops1) — customer asked"; an action not named above in its own words."""
    words = STAFF_ACTIONS.get(action) or action.replace("_", " ").capitalize()
    extra = ""
    if action == "print_receipt" and details:
        extra = f" (receipt {details.get('receipt_no')}, print {details.get('print')})"
    return f"{words}{extra} by {who(actor)}" + (f" — {reason}" if reason else "")
