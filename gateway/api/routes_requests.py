"""Payment requests (bills with a code a customer types): create, read, cancel, list."""
from __future__ import annotations

from flask import current_app, request

from shared.db import for_update, write_tx
from shared.errors import InvalidInput, NotFound
from shared.models import Merchant, PaymentRequest
from shared.states import RequestStatus

from ..backoffice.serialize import request_json, reveals
from ..payments.requests import create_request, set_request_status
from ..providers.outbound import OutboundPolicy
from .common import bp, decode_cursor, encode_cursor, idempotent, json_body, page_limit, principal
from .routes_payments import MAX_ID, audit, optional_reason, require_creator, scoped_key

OPTIONAL = ("description", "phone", "expires_in", "callback_url", "email")


def _visible(request_id: int) -> PaymentRequest:
    """The request if the caller may see it: staff see all, a merchant only its own (404 otherwise)."""
    who = principal()
    row = PaymentRequest.get_or_none(PaymentRequest.id == request_id) if 0 < request_id <= MAX_ID else None
    if row is None or (who.kind == "merchant" and row.merchant_id != who.id):
        raise NotFound(f"There is no payment request {request_id}.")
    return row


@bp.post("/payment-requests")
def create_payment_request():
    """Open a request; 201 with its six-digit code."""
    who = require_creator()
    data = json_body(("amount", "account"), OPTIONAL)
    if not isinstance(data.get("description", ""), str):
        raise InvalidInput("description must be text.", code="invalid_description")
    merchant = Merchant.get_by_id(who.id) if who.kind == "merchant" else None
    lipa = current_app.extensions["lipa"]
    key = scoped_key(who, request.headers.get("Idempotency-Key"))

    def create():
        row = create_request(amount=data["amount"], account=data["account"], description=data.get("description", ""),
                             phone=data.get("phone"), expires_in=data.get("expires_in"),
                             callback_url=data.get("callback_url"), idempotency_key=key, merchant=merchant,
                             email=data.get("email"),
                             url_policy=OutboundPolicy.from_config(lipa.config), public_url=lipa.public_url,
                             ussd_code=lipa.config.ussd_code)
        return _json(row, who), 201

    return idempotent(create)


@bp.get("/payment-requests/<int:request_id>")
def get_payment_request(request_id: int):
    """One request; a merchant sees only its own."""
    principal().require_reader()
    return _json(_visible(request_id), principal())


@bp.post("/payment-requests/<int:request_id>/cancel")
def cancel_payment_request(request_id: int):
    """OPEN (or DRAFT) -> CANCELLED; the merchant's webhook is queued. Anything else is a 409."""
    who = require_creator()
    reason = optional_reason()
    _visible(request_id)
    with write_tx():
        row = for_update(PaymentRequest.select().where(PaymentRequest.id == request_id)).get()
        previous = row.status
        set_request_status(row, RequestStatus.CANCELLED)
        audit("cancel", row.id, reason=reason, target_type="payment_request",
              details={"from": previous, "to": row.status, "by": who.kind})
    return _json(row, who)


@bp.get("/payment-requests")
def list_payment_requests():
    """Requests newest first, optionally by status, one keyset page at a time; a merchant sees only its own."""
    who = principal()
    who.require_reader()
    unknown = sorted(set(request.args) - {"status", "limit", "cursor"})
    if unknown:
        raise InvalidInput(f"Filter {unknown[0]!r} is not a filter of this list.", code="invalid_filter")
    query = PaymentRequest.select().order_by(PaymentRequest.id.desc())
    if who.kind == "merchant":
        query = query.where(PaymentRequest.merchant == who.id)
    status = request.args.get("status")
    if status:
        if status.upper() not in {s.value for s in RequestStatus}:
            raise InvalidInput(f"Filter 'status' must be one of {', '.join(s.value for s in RequestStatus)}.",
                               code="invalid_filter")
        query = query.where(PaymentRequest.status == status.upper())
    before, limit = decode_cursor(request.args.get("cursor")), page_limit()
    if before is not None:
        query = query.where(PaymentRequest.id < before)
    rows = list(query.limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [_json(r, who) for r in rows],
            "next_cursor": encode_cursor(rows[-1].id) if more else None}


def _json(row, who) -> dict:
    """A request as its caller may see it, with its pay link and dial string."""
    lipa = current_app.extensions["lipa"]
    return request_json(row, reveal=reveals(who), public_url=lipa.public_url, ussd_code=lipa.config.ussd_code)
