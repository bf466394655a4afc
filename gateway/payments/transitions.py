"""Every status change goes through transition(): checked against the table, recorded as an event."""
from __future__ import annotations

import logging

from shared.errors import InvalidTransition
from shared.models import Payment, PaymentEvent
from shared.states import ACTIVE, PaymentStatus, can_transition
from shared.timeutil import utcnow

from ..notify.alerts import raise_alert  # noqa: F401 - flag() raises one; callers import it from here too

log = logging.getLogger(__name__)

# Listeners called inside the same transaction as the change, by name (a new app replaces its own).
_listeners: dict[str, object] = {}


def on_transition(name: str, listener) -> None:
    """Register listener(payment, from_status, to_status, event), run inside the change's transaction."""
    _listeners[name] = listener


def transition(payment: Payment, to: PaymentStatus | str, *, actor: str, reason: str = "",
               payload=None, message: str | None = None, **fields) -> PaymentEvent:
    """Move a payment to ``to``; the caller holds a write transaction. Raises InvalidTransition."""
    to = PaymentStatus(to)
    current = payment.status
    if not can_transition(current, to):
        raise InvalidTransition(f"A {current} payment cannot become {to.value}.")
    now = utcnow()
    payment.status = to.value
    payment.active_phone = payment.phone if to in ACTIVE else None
    payment.updated_at = now
    if message is not None:
        payment.status_message = message[:200]
    if to is PaymentStatus.COMPLETED and not payment.completed_at:
        payment.completed_at = now
    for name, value in fields.items():
        setattr(payment, name, value)
    payment.save()
    event = PaymentEvent.create(
        payment=payment, kind="transition", from_status=current, to_status=to.value,
        actor=actor, reason=reason[:255], payload=payload, created_at=now,
    )
    log.info("payment %s %s -> %s by %s", payment.reference, current, to.value, actor)
    for listener in list(_listeners.values()):
        listener(payment, current, to.value, event)
    return event


def record(payment: Payment, kind: str, *, actor: str, reason: str = "", payload=None) -> PaymentEvent:
    """Append a non-transition event (STK request/answer, flag, duplicate) to the timeline."""
    return PaymentEvent.create(
        payment=payment, kind=kind, from_status=payment.status, to_status=payment.status,
        actor=actor, reason=reason[:255], payload=payload,
    )


def flag(payment: Payment, reason: str, *, actor: str, payload=None, alert_kind: str = "flagged") -> None:
    """Mark a payment for staff review, with an event and an alert; never moves money."""
    payment.flagged = True
    payment.flag_reason = reason[:255]
    payment.updated_at = utcnow()
    payment.save()
    record(payment, "flag", actor=actor, reason=reason, payload=payload)
    raise_alert(alert_kind, reason, payment=payment)
