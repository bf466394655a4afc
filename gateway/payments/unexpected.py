"""Money that arrives where it is not expected is never dropped: it stays COMPLETED, is flagged, alerted
and audited, then refunded automatically (config.auto_refund) or held for staff. No Flask here."""
from __future__ import annotations

import logging

from shared.db import db
from shared.models import AuditLog, Payment

from .transitions import current_hooks, flag, record

log = logging.getLogger(__name__)
ALERT_KIND = "unexpected_money"
HELD = "held for staff"


def handle_unexpected(payment: Payment, reason: str, *, config=None) -> str:
    """Keep the money and make it visible; returns "refund_requested" or "held". Caller holds the transaction."""
    hooks = current_hooks()  # the app's: this runs inside a change, where no app is at hand
    config = config if config is not None else hooks.config
    refund, why_held = _refund_service(config, hooks.request_refund)
    plan = "automatic refund requested" if refund else why_held
    flag(payment, f"{reason}; {plan}", actor="system", alert_kind=ALERT_KIND)
    outcome = "held"
    if refund is not None:
        outcome, plan = _request_refund(refund, payment, reason)
    _audit(payment, reason, outcome, plan)
    return outcome


def _refund_service(config, request_refund):
    """The refund call when auto-refund is on and the app wired one, else (None, why it is held)."""
    if config is None or not getattr(config, "auto_refund", False):
        return None, HELD
    if request_refund is None:
        log.warning("auto-refund is on but no refund service is wired; money held for staff")
        return None, f"{HELD} (auto-refund unavailable)"
    return request_refund, ""


def _request_refund(request_refund, payment: Payment, reason: str) -> tuple[str, str]:
    """Ask for the refund in a savepoint: if it fails, the money is still kept and held for staff."""
    try:
        with db.atomic():
            request_refund(payment, payment.amount, reason, requested_by="auto-refund")
    except Exception as exc:  # the refund is optional; keeping the money is not
        log.exception("auto-refund of %s failed; held for staff", payment.reference)
        note = f"{HELD} (auto-refund failed: {type(exc).__name__})"
        _refresh(payment)
        Payment.update(flag_reason=f"{reason}; {note}"[:255]).where(Payment.id == payment.id).execute()
        payment.flag_reason = f"{reason}; {note}"[:255]
        record(payment, "auto_refund_failed", actor="system", reason=note)
        return "held", note
    _refresh(payment)
    return "refund_requested", "automatic refund requested"


def _refresh(payment: Payment) -> None:
    """The refund service may have moved the row: later listeners must not save a stale copy over it."""
    fresh = Payment.get_or_none(Payment.id == payment.id)
    if fresh is not None:
        payment.__data__.update(fresh.__data__)


def _audit(payment: Payment, reason: str, outcome: str, plan: str) -> None:
    AuditLog.create(actor="system", action="unexpected_money", target_type="payment", target_id=str(payment.id),
                    reason=f"{reason}; {plan}"[:500],
                    details={"reference": payment.reference, "amount": payment.amount, "outcome": outcome,
                             "receipt": payment.mpesa_receipt})
