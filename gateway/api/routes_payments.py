"""Payments over the API: list, detail with its timeline, create, and the staff actions on one payment.

Thin: parse the request, call backoffice.staff_actions (where each action's transaction, audit row and
outbox key live), render the answer, and put any STK push or refund call on the app's background tasks.
"""
from __future__ import annotations

import hashlib

from flask import current_app, request

from gateway.jobs.sweeps import apply_query
from gateway.refunds import service as refunds_service
from shared.errors import InvalidInput, NotFound
from shared.models import Approval, AuditLog, Payment

from ..backoffice import approvals, timeline
from ..backoffice import staff_actions as actions
from ..backoffice.payments_query import list_payments, of_merchant, parse_filters
from ..backoffice.serialize import notification_json, payment_json, refund_json, reveals
from ..backoffice.staff_actions import MAX_ID
from ..payments import flags, service, verification
from ..payments.verification import verification_json
from .common import bp, decode_cursor, encode_cursor, idempotent, json_body, page_limit, principal
from .ratelimit import Limit, hit


def services():
    return current_app.extensions["lipa"]


def require_creator():
    """Merchant keys and staff of the operator role or above may create payments and requests."""
    who = principal()
    if who.kind != "merchant":
        who.require("operator")
    return who


def load_payment(payment_id: int) -> Payment:
    """The payment, or a 404 (staff_actions.load_payment; kept here for the other route modules)."""
    return actions.load_payment(payment_id)


def visible_payment(who, payment_id: int) -> Payment:
    """The payment if the caller may read it: staff any, a merchant only its own (404 otherwise, the same
    answer as for a payment that does not exist, so ids of other merchants' payments are not confirmed)."""
    if who.kind != "merchant":
        return load_payment(payment_id)
    payment = None
    if 0 < payment_id <= MAX_ID:
        payment = Payment.select().where(Payment.id == payment_id, of_merchant(who.id)).first()
    if payment is None:
        raise NotFound(f"There is no payment {payment_id}.")
    return payment


def audit(action: str, target_id, *, reason: str = "", details=None, target_type: str = "payment") -> AuditLog:
    """staff_actions.audit under the caller's name; the caller holds the transaction."""
    return actions.audit(principal().actor, action, target_id, reason=reason, details=details,
                         target_type=target_type)


def optional_reason() -> str:
    """An action's optional ``{"reason": …}`` body; no body at all is fine too."""
    if not request.get_data():
        return ""
    reason = json_body(optional=("reason",)).get("reason") or ""
    if not isinstance(reason, str):
        raise InvalidInput("reason must be text.", code="invalid_reason")
    return reason.strip()


def _push(payment: Payment) -> None:
    """Send the STK push in the background, after this answer."""
    lipa = services()
    lipa.tasks.submit(service.send_push, payment.id, daraja=lipa.daraja, callback_url=lipa.stk_callback_url)


@bp.get("/payments")
def list_payments_route():
    """Payments newest first, filtered, one keyset page at a time; a merchant key lists only its own."""
    who = principal()
    who.require_reader()
    filters = parse_filters(request.args)
    before, limit = decode_cursor(request.args.get("cursor")), page_limit()
    if filters.phone and who.kind == "staff" and not reveals(who):
        _viewer_phone_search(who, filters.phone)
    rows, next_id = list_payments(filters, before_id=before, limit=limit,
                                  merchant_id=who.id if who.kind == "merchant" else None)
    reveal = reveals(who)
    return {"items": [payment_json(p, reveal=reveal) for p in rows],
            "next_cursor": encode_cursor(next_id) if next_id else None}


def _viewer_phone_search(who, phone: str) -> None:
    """A viewer sees phones masked; searching by phone=… would unmask them one guess at a time, so each
    search is audited (the phone masked) and LIPA_VIEWER_PHONE_SEARCHES_PER_H a viewer may make an hour."""
    per_hour = services().config.viewer_phone_searches_per_h
    hit(f"phone-search:{who.scope}", Limit(per_hour, 3600))
    actions.audit_phone_search(who.actor, who.id, phone)


@bp.get("/payments/<int:payment_id>")
def get_payment(payment_id: int):
    """One payment with its whole timeline, raw callbacks, messages and refunds; a merchant gets only
    its own payment itself (the timeline holds staff actions and other parties' provider exchanges)."""
    who = principal()
    who.require_reader()
    payment = visible_payment(who, payment_id)
    reveal = reveals(who)
    if who.kind == "merchant":
        return payment_json(payment, reveal=reveal)
    return {**payment_json(payment, reveal=reveal), "events": timeline.timeline(payment, reveal=reveal),
            "callbacks": timeline.callbacks(payment, reveal=reveal),
            "notifications": timeline.notifications(payment, reveal=reveal), "refunds": timeline.refunds(payment),
            "attempts": _attempts(payment)}


def _attempts(payment: Payment) -> dict:
    """The payment's place in a retry chain, so staff can open the attempt before or after it."""
    def brief(p):
        return {"id": p.id, "reference": p.reference, "status": p.status}
    retries = payment.retries.order_by(Payment.id.desc())
    return {"retry_of": brief(payment.retry_of) if payment.retry_of_id else None,
            "retried_as": [brief(p) for p in retries]}


@bp.post("/payments")
def create_payment():
    """Start a payment and send its push in the background; 201 with the PENDING payment."""
    who = require_creator()
    data = json_body(("phone", "amount", "account"))
    key = request.headers.get("Idempotency-Key")

    def create():
        payment = service.initiate(phone=data["phone"], amount=data["amount"], account=data["account"],
                                   channel="api", actor=who.actor, idempotency_key=scoped_key(who, key),
                                   merchant=who.id if who.kind == "merchant" else None)
        _push(payment)
        return payment_json(payment, reveal=reveals(who)), 201

    return idempotent(create)


def scoped_key(who, key: str | None) -> str | None:
    """api:<kind>:<id>:<key>, hashed when it would not fit the column. By id, not name: merchant "Acme" with
    key "shop:order-1" and merchant "Acme:shop" with "order-1" would otherwise share one key."""
    if not key:
        return None
    raw = f"api:{who.scope}:{key}"
    return raw if len(raw) <= 200 else "api:sha256:" + hashlib.sha256(raw.encode()).hexdigest()


@bp.post("/payments/<int:payment_id>/requery")
def requery(payment_id: int):
    """Ask M-Pesa how the push ended, now, and apply the answer as the sweep would (never downgrading)."""
    who = principal()
    who.require("operator")
    reason = optional_reason()
    lipa = services()
    query, applied = actions.requery(payment_id, daraja=lipa.daraja, apply_query=apply_query,
                                     hard_limit_s=lipa.config.stk_hard_limit_s, actor=who.actor, reason=reason)
    return {"payment": payment_json(load_payment(payment_id), reveal=reveals(who)), "query": query, "applied": applied}


@bp.post("/payments/<int:payment_id>/resend-receipt")
def resend_receipt(payment_id: int):
    """Queue the receipt SMS again (even to a phone that sent STOP: staff were asked for it)."""
    who = principal()
    who.require("operator")
    payment, note = actions.resend_receipt(payment_id, actor=who.actor, reason=optional_reason())
    reveal = reveals(who)
    return {"payment": payment_json(payment, reveal=reveal),
            "notification": notification_json(note, reveal=reveal)}, 201


@bp.post("/payments/<int:payment_id>/retry")
def retry_payment(payment_id: int):
    """A new payment linked to a failed, cancelled or expired one; its push goes out in the background."""
    who = principal()
    who.require("operator")
    fresh = actions.retry(payment_id, actor=who.actor, reason=optional_reason())
    _push(fresh)
    return payment_json(fresh, reveal=reveals(who)), 201


@bp.post("/payments/<int:payment_id>/refund")
def refund_payment(payment_id: int):
    """Start a refund (admin); Daraja is asked in the background and answers on the result URL."""
    who = principal()
    who.require("admin")
    data = json_body(("amount", "reason"))
    lipa = services()
    result = actions.refund(payment_id, data["amount"], _reason(data), actor=who.actor, config=lipa.config)
    if isinstance(result, Approval):
        return _parked(result)
    lipa.tasks.submit(refunds_service.send_refund, result.id, daraja=lipa.daraja, config=lipa.config,
                      result_url=lipa.result_url, timeout_url=lipa.timeout_url)
    return refund_json(result), 201


def _reason(data: dict) -> str:
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("reason must be text saying why.", code="missing_field")
    return reason.strip()[:255]


@bp.post("/payments/<int:payment_id>/resolve")
def resolve(payment_id: int):
    """Resolve by hand (admin) with evidence: COMPLETED answers 202 with the receipt's verification."""
    who = principal()
    who.require("admin")
    data = json_body(("status", "reason"), optional=("receipt",))
    kind, result = actions.resolve(payment_id, data, _reason(data), actor=who.actor, config=services().config)
    if kind == "approval":
        return _parked(result)
    if kind == "verification":
        verification.submit_verification(services(), result.id)
        return {"verification": verification_json(result)}, 202
    return payment_json(result, reveal=reveals(who))


@bp.post("/payments/<int:payment_id>/flag")
def review_flag(payment_id: int):
    """Review a fraud flag (operator or admin): clear it or confirm it, shown in the timeline."""
    who = principal()
    who.require("operator")
    data = json_body(("action", "reason"))
    load_payment(payment_id)
    payment = flags.review_flag(payment_id, action=data["action"], reason=_reason(data), actor=who.actor)
    return payment_json(payment, reveal=reveals(who))


def _parked(approval: Approval):
    """Over LIPA_FOUR_EYES_OVER the change waits for a second admin; 202 with the approval."""
    return {"approval": approvals.approval_json(approval)}, 202


@bp.get("/approvals")
def list_approvals():
    """Money changes waiting for a second admin (admin)."""
    principal().require("admin")
    return {"items": [approvals.approval_json(a) for a in approvals.pending()]}


@bp.post("/approvals/<int:approval_id>")
def decide_approval(approval_id: int):
    """A different admin approves (carries it out) or rejects a pending change."""
    who = principal()
    who.require("admin")
    data = json_body(("decision", "reason"))
    approval = approvals.decide(approval_id, decision=data["decision"], reason=_reason(data), actor=who.actor,
                                services=services())
    return {"approval": approvals.approval_json(approval)}
