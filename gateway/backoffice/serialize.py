"""Rows to JSON dicts for the API: ISO-8601 UTC times with a Z, money as whole shillings (never floats).

Personal data (Kenya's Data Protection Act): every serializer that can carry a phone or a payer's name takes
a required ``reveal``: True for operators, admins and merchant systems (``reveals(principal)``), False for
the viewer role, who sees ``254712***678`` and ``J*** D***``. Required, so a new call site must decide.
"""
from __future__ import annotations

import json

from shared.logsafe import mask_text
from shared.mailaddr import mask_email
from shared.models import AuditLog, InboxMessage, Notification, Payment, PaymentEvent, PaymentRequest, Refund
from shared.phone import mask_phone
from shared.states import REQUEST_TRANSITIONS, RequestStatus, allowed_next
from shared.timeutil import iso, utcnow

from ..payments.requests import pay_url, ussd_string

REQUEST_MESSAGES = {
    RequestStatus.DRAFT.value: "Draft: not open for payment yet.",
    RequestStatus.OPEN.value: "Waiting for the customer to pay.",
    RequestStatus.PAID.value: "Paid.",
    RequestStatus.EXPIRED.value: "Expired before it was paid.",
    RequestStatus.CANCELLED.value: "Cancelled.",
}


# Keys of provider payloads whose value is a payer's number (or Daraja's hash of it), or a payer's name.
PHONE_KEYS = frozenset({"MSISDN", "PhoneNumber", "phoneNumber", "phone", "from", "recipient", "payer_hash"})
NAME_KEYS = frozenset({"FirstName", "MiddleName", "LastName", "payer_name", "other_party"})


def reveals(who) -> bool:
    """Who sees phones and names in full: staff of the operator role and above, and merchant systems
    (which sent the phone themselves). Viewers see them masked."""
    return who.kind == "merchant" or who.role in ("operator", "admin")


def shown_phone(phone: str | None, reveal: bool) -> str | None:
    return phone if reveal or not phone else mask_phone(phone)


def shown_email(address: str | None, reveal: bool) -> str | None:
    """An e-mail address as this reader may see it: like a phone, whole only to those who see phones whole."""
    return address if reveal or not address else mask_email(address)


def mask_name(name: str) -> str:
    """JANE W DOE -> J*** W*** D***: enough to recognise a customer on the phone, not to name one."""
    return " ".join(f"{part[0]}***" for part in str(name).split()) or "***"


def shown(value, reveal: bool, key: str = ""):
    """A JSON value (a provider payload, a message body) as this reader may see it: phones and payer names
    masked for a viewer, wherever they sit (STK metadata carries the phone as a number)."""
    if reveal or value is None or isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return {k: shown(v, False, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shown(v, False, key) for v in value]
    if key in NAME_KEYS and value != "":
        return mask_name(value)
    if key in PHONE_KEYS and value != "":
        return mask_phone(str(value))
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, int):
        masked = mask_text(str(value))
        return masked if masked != str(value) else value
    return value


def payment_json(p: Payment, *, reveal: bool) -> dict:
    """A payment as every list and detail answer shows it."""
    return {
        "id": p.id, "reference": p.reference, "phone": shown_phone(p.phone, reveal), "amount": int(p.amount),
        "account": p.account,
        "description": p.description, "status": p.status, "status_message": p.status_message,
        "mpesa_receipt": p.mpesa_receipt, "result_code": p.result_code, "result_desc": p.result_desc,
        "channel": p.channel, "language": p.language, "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at), "completed_at": iso(p.completed_at), "flagged": bool(p.flagged),
        "flag_reason": p.flag_reason, "request_id": p.request_id, "retry_of": p.retry_of_id,
        "refunded_amount": int(p.refunded_amount or 0), "push_attempts": p.push_attempts,
        "allowed_transitions": allowed_next(p.status),
    }


def request_json(r: PaymentRequest, *, reveal: bool, public_url: str = "", ussd_code: str = "") -> dict:
    """A payment request (bill) with the code a customer types, its link and its dial string."""
    expired = r.status == RequestStatus.OPEN.value and r.expires_at is not None and r.expires_at <= utcnow()
    return {
        "id": r.id, "code": r.code, "status": r.status, "amount": None if r.amount is None else int(r.amount),
        "account": r.account, "description": r.description, "phone": shown_phone(r.phone, reveal),
        "email": shown_email(r.email, reveal),
        "expires_at": iso(r.expires_at),
        "pay_url": pay_url(r.code, public_url) if public_url else None,
        "ussd_string": ussd_string(r.code, ussd_code) if ussd_code else None,
        "callback_url": r.callback_url, "merchant_id": r.merchant_id,
        "status_message": "Expired; closing shortly." if expired else REQUEST_MESSAGES.get(r.status, ""),
        "allowed_transitions": sorted(s.value for s in REQUEST_TRANSITIONS[RequestStatus(r.status)]),
        "created_at": iso(r.created_at), "updated_at": iso(r.updated_at),
    }


def event_json(e: PaymentEvent, *, reveal: bool) -> dict:
    """One entry of a payment's own event log."""
    return {
        "id": e.id, "kind": e.kind, "from_status": e.from_status, "to_status": e.to_status, "actor": e.actor,
        "reason": e.reason, "payload": shown(e.payload, reveal), "created_at": iso(e.created_at),
    }


def refund_json(r: Refund) -> dict:
    """A refund of (part of) a payment."""
    return {
        "id": r.id, "payment_id": r.payment_id, "amount": int(r.amount), "reason": r.reason,
        "requested_by": r.requested_by, "method": r.method, "status": r.status,
        "originator_conversation_id": r.originator_conversation_id, "conversation_id": r.conversation_id,
        "transaction_id": r.transaction_id, "result_code": r.result_code, "result_desc": r.result_desc,
        "created_at": iso(r.created_at), "updated_at": iso(r.updated_at),
    }


def payment_references(rows) -> dict[int, str]:
    """{payment id: reference} for the rows' payments (alerts, notifications, exceptions), in one query:
    staff talk in references, not ids."""
    ids = sorted({row.payment_id for row in rows if row.payment_id})
    return dict(Payment.select(Payment.id, Payment.reference).where(Payment.id.in_(ids)).tuples()) if ids else {}


def notification_json(n: Notification, *, reveal: bool) -> dict:
    """An outbox message with its delivery status; for a viewer, SMS recipients and phones in bodies masked."""
    recipient = (shown_phone(n.recipient, reveal) if n.channel == "sms"
                 else shown_email(n.recipient, reveal) if n.channel == "email" else n.recipient)
    return {
        "id": n.id, "channel": n.channel, "kind": n.kind, "payment_id": n.payment_id, "request_id": n.request_id,
        "recipient": recipient, "language": n.language, "body": shown(n.body, reveal), "status": n.status,
        "attempts": n.attempts, "provider_status": n.provider_status, "failure_reason": n.failure_reason,
        "created_at": iso(n.created_at), "sent_at": iso(n.sent_at), "delivered_at": iso(n.delivered_at),
    }


def callback_json(m: InboxMessage, *, reveal: bool) -> dict:
    """A raw provider message as stored; the body parsed as JSON when it is JSON."""
    return {
        "id": m.id, "source": m.source, "status": m.status, "note": m.note, "remote_addr": m.remote_addr,
        "body": shown(parse_body(m.body), reveal), "received_at": iso(m.received_at),
        "processed_at": iso(m.processed_at),
    }


def audit_json(a: AuditLog, *, reveal: bool) -> dict:
    """A staff action or automatic money decision."""
    return {
        "id": a.id, "actor": a.actor, "action": a.action, "target_type": a.target_type, "target_id": a.target_id,
        "reason": a.reason, "details": shown(a.details, reveal), "created_at": iso(a.created_at),
    }


def parse_body(text: str):
    """JSON when it parses, else the text as stored."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text
