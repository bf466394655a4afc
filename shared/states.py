"""The payment lifecycle: one enum, one table of allowed transitions. Only payments.transition uses it."""
from __future__ import annotations

from enum import Enum


class PaymentStatus(str, Enum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    SETTLED = "SETTLED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REFUND_PENDING = "REFUND_PENDING"
    REFUNDED = "REFUNDED"


S = PaymentStatus

# COMPLETED is also reachable from FAILED, CANCELLED and EXPIRED: a success that arrives after we
# gave up is money received, and money received is never dropped (the change raises an alert). It takes
# M-Pesa's own word (an STK query, a C2B confirmation, Transaction Status), never a callback alone.
# PENDING -> EXPIRED covers a push whose outcome Daraja never told us (timeout, no CheckoutRequestID).
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.PENDING: frozenset({S.PROCESSING, S.FAILED, S.CANCELLED, S.COMPLETED, S.EXPIRED}),
    S.PROCESSING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.EXPIRED}),
    S.COMPLETED: frozenset({S.SETTLED, S.REFUND_PENDING}),
    S.SETTLED: frozenset({S.REFUND_PENDING}),
    S.FAILED: frozenset({S.COMPLETED}),
    S.CANCELLED: frozenset({S.COMPLETED}),
    S.EXPIRED: frozenset({S.COMPLETED}),
    S.REFUND_PENDING: frozenset({S.REFUNDED, S.COMPLETED, S.SETTLED}),
    S.REFUNDED: frozenset(),
}

# A phone may have one of these at a time (a second STK push would be refused by M-Pesa anyway).
ACTIVE = frozenset({S.PENDING, S.PROCESSING})
# Statuses in which Lipa holds the customer's money.
PAID = frozenset({S.COMPLETED, S.SETTLED, S.REFUND_PENDING, S.REFUNDED})
FINAL_UNPAID = frozenset({S.FAILED, S.CANCELLED, S.EXPIRED})


def can_transition(current: str, target: str) -> bool:
    """True when the table allows current -> target."""
    return PaymentStatus(target) in TRANSITIONS[PaymentStatus(current)]


def allowed_next(current: str) -> list[str]:
    """The statuses still reachable in one step, for the API and the desktop app."""
    return sorted(s.value for s in TRANSITIONS[PaymentStatus(current)])


class RequestStatus(str, Enum):
    DRAFT = "DRAFT"
    OPEN = "OPEN"
    PAID = "PAID"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


REQUEST_TRANSITIONS = {
    RequestStatus.DRAFT: frozenset({RequestStatus.OPEN, RequestStatus.CANCELLED}),
    RequestStatus.OPEN: frozenset({RequestStatus.PAID, RequestStatus.EXPIRED, RequestStatus.CANCELLED}),
    RequestStatus.PAID: frozenset(),
    RequestStatus.EXPIRED: frozenset(),
    RequestStatus.CANCELLED: frozenset(),
}
