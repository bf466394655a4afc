"""Every status change goes through transition(): checked against the table, recorded as an event."""
from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from shared.config import Config
from shared.db import prepared
from shared.errors import InvalidTransition
from shared.models import Payment, PaymentEvent
from shared.states import ACTIVE, PaymentStatus, can_transition
from shared.timeutil import utcnow

from ..notify.alerts import raise_alert  # noqa: F401 - flag() raises one; callers import it from here too

log = logging.getLogger(__name__)

Listener = Callable[[Payment, str, str, PaymentEvent], None]


@dataclass
class TransitionHooks:
    """An app's side effects of a status change (queue the SMS, update the request, flag), run inside the
    change's transaction. create_app builds one and holds it on its Services; it is bound to each request,
    background task and job (bind_hooks), so two apps in one process never run each other's listeners."""

    listeners: dict[str, Listener] = field(default_factory=dict)
    config: Config | None = None  # the app's Config, for rules that run inside a change (unexpected money)
    request_refund: Callable | None = None  # refunds.service.request_refund, wired by create_app
    verification_purposes: dict[str, Callable] = field(default_factory=dict)  # purpose -> action on a receipt

    def add(self, name: str, listener: Listener) -> None:
        """listener(payment, from_status, to_status, event); a name added again replaces the first."""
        self.listeners[name] = listener

    def run(self, payment: Payment, from_status: str, to_status: str, event: PaymentEvent) -> None:
        for listener in list(self.listeners.values()):
            listener(payment, from_status, to_status, event)


# Which app's hooks the running code belongs to: a context variable (per thread, per request), set by
# bind_hooks for each request, task and job. A thread the app did not start (a test's own) has no binding:
# it gets the newest app's hooks, never none, because a change that skipped its listeners would lose an SMS.
_bound: ContextVar[TransitionHooks] = ContextVar("lipa_transition_hooks")
_newest: list[TransitionHooks] = []


def bind_hooks(hooks: TransitionHooks) -> None:
    """Make ``hooks`` the ones transition() runs in this context (the current thread or request)."""
    _bound.set(hooks)
    _newest[:] = [hooks]


def current_hooks() -> TransitionHooks:
    hooks = _bound.get(None) or (_newest[0] if _newest else None)
    if hooks is None:
        raise RuntimeError("a status changed before any app was built: call create_app() first")
    return hooks


def on_transition(name: str, listener: Listener) -> None:
    """Add a listener to the hooks bound here (tests spy on changes this way)."""
    current_hooks().add(name, listener)


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
    prepared.save(payment)
    event = prepared.create(
        PaymentEvent, payment=payment, kind="transition", from_status=current, to_status=to.value,
        actor=actor, reason=reason[:255], payload=payload, created_at=now,
    )
    log.info("payment %s %s -> %s by %s", payment.reference, current, to.value, actor)
    current_hooks().run(payment, current, to.value, event)
    return event


def record(payment: Payment, kind: str, *, actor: str, reason: str = "", payload=None) -> PaymentEvent:
    """Append a non-transition event (STK request/answer, flag, duplicate) to the timeline."""
    return prepared.create(
        PaymentEvent, payment=payment, kind=kind, from_status=payment.status, to_status=payment.status,
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
