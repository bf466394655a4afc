"""One payment's whole story in time order: USSD hops, events, raw callbacks, messages, refunds, staff actions.

Flask-free, so the desktop app's tests and a support script can call it too. Every entry has
``at`` (ISO UTC), ``type``, ``actor`` and ``summary``, plus the fields of its kind. ``reveal``: phones and
payer names in full (operators, admins) or masked (viewers), see serialize.reveals.
"""
from __future__ import annotations

from datetime import datetime

from shared.models import AuditLog, InboxMessage, Notification, Payment, PaymentEvent, Refund, UssdSession
from shared.timeutil import iso

from . import story
from .serialize import audit_json, callback_json, event_json, notification_json, refund_json

# At the same second, what happened first: the caller's hops, then our events, then the rest.
_ORDER = {"ussd": 0, "event": 1, "callback": 2, "notification": 3, "refund": 4, "staff_action": 5}


def timeline(payment: Payment, *, reveal: bool) -> list[dict]:
    """Every entry about the payment, oldest first."""
    entries: list[tuple[datetime, int, int, dict]] = []
    for source in (_ussd, _events, _callbacks, _notifications, _refunds, _staff_actions):
        for at, entry in source(payment, reveal):
            entries.append((at, _ORDER[entry["type"]], len(entries), {"at": iso(at), **entry}))
    entries.sort(key=lambda item: item[:3])
    return [entry for *_, entry in entries]


def callbacks(payment: Payment, *, reveal: bool) -> list[dict]:
    """The raw provider messages linked to the payment, oldest first."""
    rows = InboxMessage.select().where(InboxMessage.payment == payment).order_by(InboxMessage.id)
    return [callback_json(row, reveal=reveal) for row in rows]


def notifications(payment: Payment, *, reveal: bool) -> list[dict]:
    """Its SMS and webhooks with their delivery status, oldest first."""
    rows = Notification.select().where(Notification.payment == payment).order_by(Notification.id)
    return [notification_json(row, reveal=reveal) for row in rows]


def refunds(payment: Payment) -> list[dict]:
    """Its refunds, oldest first."""
    return [refund_json(row) for row in Refund.select().where(Refund.payment == payment).order_by(Refund.id)]


def _ussd(payment: Payment, _reveal: bool):
    """The hops of the USSD session(s) linked to the payment: the dial, then one per input. Not the sealed
    phone (the payment's own), so nothing is unsealed for nothing. Only the hop that created the payment is
    stored (the others write nothing), so every hop is shown at the payment's creation, before it."""
    fields = (UssdSession.id, UssdSession.session_id, UssdSession.service_code, UssdSession.inputs,
              UssdSession.created_at)
    for session in UssdSession.select(*fields).where(UssdSession.payment == payment).order_by(UssdSession.id):
        yield from _hops(session, min(session.created_at, payment.created_at))


def _hops(session: UssdSession, at: datetime):
    inputs = [str(value) for value in (session.inputs or [])]
    yield at, {"type": "ussd", "actor": "ussd", "summary": f"dialled {session.service_code}",
                               "session_id": session.session_id, "hop": 0, "input": None, "text": ""}
    for hop, value in enumerate(inputs, start=1):
        yield at, {"type": "ussd", "actor": "ussd", "summary": f"entered {value!r}",
                                   "session_id": session.session_id, "hop": hop, "input": value,
                                   "text": "*".join(inputs[:hop])}


def _events(payment: Payment, reveal: bool):
    amounts = dict(Refund.select(Refund.id, Refund.amount).where(Refund.payment == payment).tuples())
    for row in PaymentEvent.select().where(PaymentEvent.payment == payment).order_by(PaymentEvent.id):
        if row.kind == "transition":
            summary = story.transition(row.from_status or "", row.to_status or "", row.actor, row.reason,
                                       receipt=payment.mpesa_receipt, amount=story.refund_amount(row.reason, amounts))
        else:
            summary = story.event(row.kind, row.actor, row.reason)
        yield row.created_at, {"type": "event", "summary": summary, **event_json(row, reveal=reveal)}


def _callbacks(payment: Payment, reveal: bool):
    for row in InboxMessage.select().where(InboxMessage.payment == payment).order_by(InboxMessage.id):
        entry = callback_json(row, reveal=reveal)
        yield row.received_at, {"type": "callback", "actor": row.source,
                                "summary": story.callback(row.source, row.status), **entry}


def _notifications(payment: Payment, reveal: bool):
    for row in Notification.select().where(Notification.payment == payment).order_by(Notification.id):
        entry = notification_json(row, reveal=reveal)
        yield row.created_at, {"type": "notification", "actor": "notify", **entry, "summary": story.notification(
            row.channel, row.kind, row.status, entry["recipient"] or "", attempts=row.attempts)}


def _refunds(payment: Payment, _reveal: bool):
    for row in Refund.select().where(Refund.payment == payment).order_by(Refund.id):
        yield row.created_at, {"type": "refund", "actor": row.requested_by, **refund_json(row), "summary": story.refund(
            row.id, row.amount, row.requested_by, row.reason, row.status)}


def _staff_actions(payment: Payment, reveal: bool):
    rows = AuditLog.select().where(AuditLog.target_type == "payment", AuditLog.target_id == str(payment.id))
    for row in rows.order_by(AuditLog.id):
        yield row.created_at, {"type": "staff_action", **audit_json(row, reveal=reveal), "summary": story.staff_action(
            row.action, row.actor, row.reason or "", row.details if isinstance(row.details, dict) else None)}
