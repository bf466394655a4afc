"""Plain data classes built from the admin API's JSON, and the rules the GUI needs about them (no Qt here)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Generic, TypeVar

from shared.text import clean
from shared.timeutil import NAIROBI

T = TypeVar("T")
ROLES = ("viewer", "operator", "admin")
STATUSES = ("PENDING", "PROCESSING", "COMPLETED", "SETTLED", "FAILED", "CANCELLED", "EXPIRED",
            "REFUND_PENDING", "REFUNDED")
CHANNELS = ("ussd", "sms", "api", "c2b", "staff")
RECEIPTED = ("COMPLETED", "SETTLED")
PRINTABLE = ("COMPLETED", "SETTLED", "REFUND_PENDING", "REFUNDED")
RETRYABLE = ("FAILED", "CANCELLED", "EXPIRED")
QUERYABLE = ("PENDING", "PROCESSING", "FAILED", "CANCELLED", "EXPIRED")
TIMELINE_KEYS = ("at", "type", "actor", "summary")


def role_at_least(role: str, needed: str) -> bool:
    """viewer < operator < admin, as the gateway ranks them; an unknown role may do nothing."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def parse_time(text: str | None) -> datetime | None:
    """The API's ISO-8601 ``…Z`` text to an aware UTC datetime."""
    if not text:
        return None
    value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def local_time(value: datetime | None) -> str:
    """Nairobi wall-clock time, which is what staff and customers talk in."""
    return value.astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M:%S") if value else ""


@dataclass(frozen=True)
class Session:
    """A logged-in staff member: the bearer token and the role that decides which buttons work."""

    token: str
    role: str
    username: str
    expires_at: datetime | None = None

    @classmethod
    def from_json(cls, data: dict) -> Session:
        return cls(token=data["token"], role=data["role"], username=data.get("username", ""),
                   expires_at=parse_time(data.get("expires_at")))


@dataclass(frozen=True)
class Page(Generic[T]):
    """One keyset page of a list; ``next_cursor`` is None on the last page."""

    items: list[T]
    next_cursor: str | None = None
    counts: dict = field(default_factory=dict)  # totals some lists answer beside the page (alerts: unacknowledged)


@dataclass(frozen=True)
class Attempt:
    """Another attempt in a payment's retry chain, enough to name it and open it."""

    id: int
    reference: str
    status: str

    @classmethod
    def from_json(cls, d: dict) -> Attempt:
        return cls(int(d["id"]), clean(d.get("reference")), clean(d.get("status")))


@dataclass(frozen=True)
class Payment:
    """A payment as the list and the detail show it; ``raw`` keeps every field the gateway sent."""

    id: int
    reference: str
    phone: str
    amount: int
    account: str
    status: str
    status_message: str = ""
    mpesa_receipt: str | None = None
    channel: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    flagged: bool = False
    flag_reason: str | None = None
    refunded_amount: int = 0
    retry_of: int | None = None
    allowed_transitions: tuple[str, ...] = ()
    retried_as: tuple[Attempt, ...] = ()  # newer attempts, newest first (known once the detail is loaded)
    retry_of_attempt: Attempt | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, d: dict) -> Payment:
        # Texts are cleaned again here (shared.text): the desktop shows what an older gateway stored too.
        return cls(
            id=int(d["id"]), reference=clean(d.get("reference")), phone=clean(d.get("phone")),
            amount=int(d.get("amount") or 0), account=clean(d.get("account")), status=clean(d.get("status")),
            status_message=clean(d.get("status_message")), mpesa_receipt=clean(d.get("mpesa_receipt")) or None,
            channel=clean(d.get("channel")), created_at=parse_time(d.get("created_at")),
            updated_at=parse_time(d.get("updated_at")), completed_at=parse_time(d.get("completed_at")),
            flagged=bool(d.get("flagged")), flag_reason=clean(d.get("flag_reason")) or None,
            refunded_amount=int(d.get("refunded_amount") or 0), retry_of=d.get("retry_of"),
            allowed_transitions=tuple(d.get("allowed_transitions") or ()),
            retried_as=tuple(Attempt.from_json(a) for a in d.get("retried_as") or ()),
            retry_of_attempt=Attempt.from_json(d["retry_of_attempt"]) if d.get("retry_of_attempt") else None,
            raw=dict(d),
        )

    def linked_attempt_ids(self) -> set[int]:
        """The other attempts of the chain this payment names (its retries, the payment it retried)."""
        return {a.id for a in self.retried_as} | ({self.retry_of_attempt.id} if self.retry_of_attempt else set())

    def with_attempt_status(self, attempt_id: int, status: str) -> Payment | None:
        """This payment with a linked attempt's status as the live feed announced it (so "Retried as LP2
        (processing)" follows LP2 without a read); None when that attempt is not linked or already says so."""
        retried = tuple(replace(a, status=status) if a.id == attempt_id else a for a in self.retried_as)
        before = self.retry_of_attempt
        if before is not None and before.id == attempt_id:
            before = replace(before, status=status)
        changed = replace(self, retried_as=retried, retry_of_attempt=before)
        return changed if changed != self else None

    @property
    def refundable(self) -> int:
        """Shillings that may still go back to the customer."""
        return max(self.amount - self.refunded_amount, 0)

    def actions(self, role: str) -> frozenset[str]:
        """What a staff member of this role may do to the payment now (see available_actions)."""
        return available_actions(self, role)


def _with_eat(value):
    """Every ISO UTC time in a payload as "2026-12-02T07:18:06Z (10:18:06 EAT)"."""
    if isinstance(value, dict):
        return {key: _with_eat(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_eat(item) for item in value]
    if isinstance(value, str) and len(value) >= 20 and value.endswith("Z") and value[10:11] == "T":
        try:
            return f"{value} ({local_time(parse_time(value))} EAT)"
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a payment's story; ``details`` holds the kind-specific fields (the raw payload)."""

    at: datetime | None
    type: str
    actor: str
    summary: str
    details: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict) -> TimelineEntry:
        details = {k: v for k, v in d.items() if k not in TIMELINE_KEYS}
        return cls(parse_time(d.get("at")), d.get("type") or "", d.get("actor") or "", d.get("summary") or "",
                   details)

    def pretty(self) -> str:
        """The payload as indented JSON, for the expandable row under the entry; its UTC times carry their
        Nairobi time beside them, as the rows above are shown in EAT."""
        return json.dumps(_with_eat(self.details), indent=2, sort_keys=True, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class PaymentDetail:
    """A payment with its whole timeline and the raw rows behind it."""

    payment: Payment
    events: list[TimelineEntry]
    callbacks: list[dict] = field(default_factory=list)
    notifications: list[dict] = field(default_factory=list)
    refunds: list[dict] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: dict) -> PaymentDetail:
        attempts = d.get("attempts") or {}
        payment = Payment.from_json({**d, "retried_as": attempts.get("retried_as") or [],
                                     "retry_of_attempt": attempts.get("retry_of")})
        return cls(payment, [TimelineEntry.from_json(e) for e in d.get("events") or []],
                   list(d.get("callbacks") or []), list(d.get("notifications") or []), list(d.get("refunds") or []))


def nairobi_midnight_utc(day: date) -> str:
    """The instant a Nairobi day starts, as the API's UTC date-time (``2024-04-30T21:00:00Z`` for 1 May)."""
    start = datetime.combine(day, time(), NAIROBI).astimezone(timezone.utc)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PaymentFilters:
    """The Payments screen's filters; empty values mean "not filtered"."""

    status: str = ""
    phone: str = ""
    account: str = ""
    q: str = ""
    date_from: date | None = None
    date_to: date | None = None
    channel: str = ""
    flagged: bool | None = None

    def problem(self) -> str:
        """Why these filters cannot be searched ("" when they can), shown beside the dates instead of a request."""
        if self.date_from and self.date_to and self.date_from > self.date_to:
            return f"From ({self.date_from:%Y-%m-%d}) is after To ({self.date_to:%Y-%m-%d})."
        return ""

    def to_params(self) -> dict[str, str]:
        """Query arguments for GET /payments.

        The screen's dates are Nairobi days (what staff and receipts see) while the API reads a bare date as a
        UTC day, so the bounds go as UTC date-times: Nairobi midnight of ``from`` up to (not including) Nairobi
        midnight after ``to``. Sending bare dates hid a payment made between 00:00 and 03:00 EAT.
        """
        params = {"status": self.status, "phone": self.phone.strip(), "account": self.account.strip(),
                  "q": self.q.strip(), "channel": self.channel,
                  "from": nairobi_midnight_utc(self.date_from) if self.date_from else "",
                  "to": nairobi_midnight_utc(self.date_to + timedelta(days=1)) if self.date_to else "",
                  "flagged": "" if self.flagged is None else str(self.flagged).lower()}
        return {k: v for k, v in params.items() if v}


REQUERY, RESEND, RETRY, REFUND, RESOLVE, PRINT = "requery", "resend-receipt", "retry", "refund", "resolve", "print"
ACTION_ROLES = {REQUERY: "operator", RESEND: "operator", RETRY: "operator", REFUND: "admin", RESOLVE: "admin",
                PRINT: "viewer"}


def _status_allows(action: str, p: Payment) -> bool:
    rules: dict[str, Any] = {
        REQUERY: p.status in QUERYABLE and p.channel != "c2b",
        RESEND: p.status in RECEIPTED,
        RETRY: p.status in RETRYABLE and not p.retried_as,
        REFUND: "REFUND_PENDING" in p.allowed_transitions and p.refundable > 0,
        RESOLVE: bool(p.allowed_transitions),
        PRINT: p.status in PRINTABLE,
    }
    return bool(rules[action])


def why_not(action: str, payment: Payment | None, role: str) -> str:
    """Why an action is not offered, in words for its tooltip ("" when it is): the role, then the state."""
    if payment is None:
        return "Open a payment first."
    needed = ACTION_ROLES[action]
    if not role_at_least(role, needed):
        return f"Needs the {needed} role (you are {role})."
    if _status_allows(action, payment):
        return ""
    state = payment.status.replace("_", " ").lower()
    if action == REFUND and payment.status in PRINTABLE and payment.refundable <= 0:
        return "Nothing is left to refund."
    if action == RETRY and payment.retried_as:
        return f"Already retried as {payment.retried_as[0].reference}: open that attempt to retry again."
    if action == REQUERY and payment.channel == "c2b":
        return "A C2B payment had no prompt to ask M-Pesa about."
    return f"Not for a {state} payment."


def available_actions(payment: Payment, role: str) -> frozenset[str]:
    """The actions worth offering: the role may do them and the payment's state allows them."""
    return frozenset(a for a, needed in ACTION_ROLES.items() if role_at_least(role, needed)
                     and _status_allows(a, payment))
