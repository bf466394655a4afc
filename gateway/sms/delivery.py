"""Africa's Talking delivery reports: stored raw, then applied to the outbox row they report on.

Reports may repeat, come out of order, lag hours or never come: nothing waits for them, a final
status (DELIVERED, FAILED) is never taken back by a late in-flight one, and a report for a message
we never sent is kept and flagged for staff. No Flask here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.db import for_update, retry_locked, write_tx
from shared.errors import InvalidInput
from shared.models import Notification
from shared.timeutil import utcnow

from ..ingest import inbox
from ..payments.transitions import raise_alert
from .commands import form_fields, message_id

log = logging.getLogger(__name__)
SOURCE = "at.delivery"
IN_FLIGHT = ("Sent", "Submitted", "Buffered")
DELIVERED = ("Success",)
FAILED = ("Rejected", "Failed", "AbsentSubscriber", "Expired")
KNOWN = {name.lower(): name for name in IN_FLIGHT + DELIVERED + FAILED}
FINAL = ("DELIVERED", "FAILED")


@dataclass(frozen=True)
class Report:
    """One delivery report, checked: ``status`` spelled as AT documents it."""

    message_id: str
    status: str
    phone: str = ""
    failure_reason: str = ""


def report_status(raw) -> str | None:
    """AT's status in its documented spelling, or None when it is not one we know."""
    return KNOWN.get(str(raw or "").strip().lower())


def dedupe_key(fields: dict[str, str]) -> str | None:
    """One stored row per (message, status): AT's retries of a report are absorbed."""
    at_id, status = message_id(fields.get("id")), report_status(fields.get("status"))
    return f"at.dlr:{at_id}:{status}" if at_id and status else None


def parse_report(fields: dict[str, str]) -> Report:
    """Check the fields every report carries; InvalidInput names what is wrong."""
    at_id = message_id(fields.get("id"))
    if at_id is None or len(at_id) > 64:
        raise InvalidInput("Field id is missing or invalid.", code="invalid_report")
    status = report_status(fields.get("status"))
    if status is None:
        raise InvalidInput("Field status is missing or not a known delivery status.", code="invalid_report")
    return Report(message_id=at_id, status=status, phone=str(fields.get("phoneNumber") or "")[:20],
                  failure_reason=str(fields.get("failureReason") or "").strip()[:255])


@retry_locked
def apply_delivery(inbox_id: int) -> str:
    """Apply one stored report once; returns the inbox status (APPLIED, FLAGGED, REJECTED)."""
    with write_tx():
        row, report, done = inbox.open_row(inbox_id, lambda body: parse_report(form_fields(body)))
        if done:
            return done
        query = Notification.select().where(Notification.provider_message_id == report.message_id)
        notification = for_update(query).first()
        if notification is None:
            inbox.mark(row, "FLAGGED", "unknown message id")
            raise_alert("unknown_delivery_report",
                        f"Delivery report {report.status} for unknown SMS {report.message_id}", inbox=row)
            return "FLAGGED"
        inbox.mark(row, "APPLIED", apply_report(notification, report), payment=notification.payment)
        return "APPLIED"


def apply_report(notification: Notification, report: Report) -> str:
    """Move the outbox row as the report says, never back from a final status; returns a note."""
    current = notification.status
    if report.status in IN_FLIGHT:
        if current in FINAL:
            return f"late {report.status} ignored: already {current}"
        _save(notification, "SENT", report.status)
    elif report.status in DELIVERED:
        if current == "DELIVERED":
            return "already DELIVERED"
        _save(notification, "DELIVERED", report.status, failure_reason="", delivered_at=utcnow())
    else:
        if current == "DELIVERED":
            return f"{report.status} ignored: already DELIVERED"
        _save(notification, "FAILED", report.status, failure_reason=report.failure_reason or report.status)
    log.info("SMS %s %s -> %s (%s)", notification.id, current, notification.status, report.status)
    return f"{current} -> {notification.status} ({report.status})"


def _save(notification: Notification, status: str, provider_status: str, **fields) -> None:
    notification.status = status
    notification.provider_status = provider_status
    notification.updated_at = utcnow()
    for name, value in fields.items():
        setattr(notification, name, value)
    notification.save()
