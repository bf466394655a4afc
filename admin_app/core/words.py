"""What the screens show instead of the API's codes: times in EAT, kinds and statuses in words, intervals.

Qt-free, one home for every screen, so the Alerts, Notifications, Jobs and Reconciliation screens never show
raw UTC ISO ("2026-12-02T07:18:06") beside Payments in EAT, or "recon_missing_in_lipa" beside plain words."""
from __future__ import annotations

from collections.abc import Callable

from .models import local_time, parse_time

ALERT_KINDS = {
    "late_money": "Money after the payment ended", "late_callback": "Late success callback",
    "late_payment": "Late payment confirmed", "late_callback_contradicted": "Late callback contradicted",
    "recon_mismatch": "Statement amount differs", "recon_unpaid_in_lipa": "Statement pays an unpaid payment",
    "recon_missing_in_statement": "Not on the statement", "recon_missing_in_lipa": "Statement money not in Lipa",
    "recon_duplicate": "Receipt on two payments", "unknown_result_code": "Unknown M-Pesa result code",
    "refund_unclear": "Refund answer unclear", "notification_failed": "Message not delivered",
    "webhook_failed": "Merchant webhook failing", "unexpected_money": "Unexpected money", "flag": "Flagged payment",
    "stuck_payment": "Payment stuck", "fraud_rule": "Fraud rule", "callback_mismatch": "Callback disagrees",
    "double_payment": "Paid twice", "duplicate_receipt": "Receipt seen twice", "refund_failed": "Refund failed",
    "unknown_callback": "Callback for no payment", "verification_refused": "M-Pesa does not know the receipt",
}
NOTIFICATION_KINDS = {
    "payment_completed": "Payment receipt", "payment_failed": "Payment failed", "reply": "Reply to an SMS",
    "payment_settled": "Settled", "refund_initiated": "Refund started", "refund_processing": "Refund sent",
    "refund_completed": "Refund done", "refund_failed": "Refund failed", "refund_cancelled": "Refund cancelled",
    "webhook_payment_paid": "Webhook: request paid", "payment_link": "Payment link",
}


def eat(text: str | None) -> str:
    """The API's ISO UTC time as Nairobi time, labelled: "2026-12-02 10:18:06 EAT" ("" for none)."""
    moment = parse_time(text)
    return f"{local_time(moment)} EAT" if moment else ""


def kind_words(kind: str, names: dict[str, str] = ALERT_KINDS) -> str:
    """A kind in words; an unknown one with its underscores as spaces, capitalised."""
    return names.get(kind) or kind.replace("_", " ").capitalize()


def every(seconds_value) -> str:
    """A job's interval: "every 30 s", "every 15 min", "every 2 h", "daily"."""
    if seconds_value in (None, ""):
        return ""
    value = int(seconds_value)
    if value % 86400 == 0:
        return "daily" if value == 86400 else f"every {value // 86400} days"
    if value % 3600 == 0:
        return f"every {value // 3600} h"
    if value % 60 == 0:
        return f"every {value // 60} min"
    return f"every {value} s"


def delivery_words(note: dict) -> str:
    """A message's state as staff read it: a message being retried is not "queued" after nine failures."""
    status, attempts = note.get("status", ""), int(note.get("attempts") or 0)
    if status == "QUEUED" and attempts:
        return f"Retrying ({attempts} {'try' if attempts == 1 else 'tries'} failed)"
    return {"QUEUED": "Waiting", "SENDING": "Sending", "SENT": "Sent", "DELIVERED": "Delivered",
            "FAILED": "Failed", "SUPPRESSED": "Not sent (opted out)"}.get(status, status.title())


def failure_words(note: dict) -> str:
    """Why a message failed (or keeps failing); nothing for one that went out."""
    if note.get("status") in ("SENT", "DELIVERED", "SUPPRESSED"):
        return ""
    return note.get("failure_reason") or ""


def wrap_to_width(text: str, advance: Callable[[str], int], width: int) -> str:
    """Words broken onto lines no wider than ``width`` as measured by ``advance`` (a font's pixel width of a
    text); a single word wider than that keeps a line of its own. For table cells that must not be cut."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and advance(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return "\n".join([*lines, current]) if current else ""
