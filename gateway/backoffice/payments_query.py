"""The payment list: filters checked one by one (a bad value is a 400 naming it), keyset pages newest first.

Flask-free: ``parse_filters`` takes any mapping of query arguments. Every value reaches SQL only as a
bound parameter, and text filters are exact matches (never LIKE), so ``%`` or ``' OR 1=1 --`` match
nothing they should not. Times without a zone are UTC; a date-only ``to`` includes that whole day.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from shared.errors import InvalidInput
from shared.models import Payment, PaymentRequest
from shared.phone import normalize_phone
from shared.states import PaymentStatus

FILTERS = ("status", "phone", "account", "q", "from", "to", "channel", "flagged")
CHANNELS = ("ussd", "sms", "api", "c2b", "staff", "web")
MAX_TEXT = 64


@dataclass(frozen=True)
class PaymentFilters:
    """Checked filter values; None means "not filtered"."""

    statuses: tuple[str, ...] | None = None
    phone: str | None = None
    account: str | None = None
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    channel: str | None = None
    flagged: bool | None = None


def parse_filters(args, extra: tuple = ("limit", "cursor")) -> PaymentFilters:
    """Check every filter; unknown argument names are refused too (a typo must not list everything)."""
    unknown = sorted(set(args) - set(FILTERS) - set(extra))
    if unknown:
        raise _bad(unknown[0], "is not a filter of this list")
    since, until = parse_time(args, "from", end=False), parse_time(args, "to", end=True)
    if since and until and since >= until:
        raise _bad("from", "must be before to")
    return PaymentFilters(
        statuses=_statuses(args.get("status")), phone=_phone(_text(args, "phone")),
        account=_upper(_text(args, "account")), q=_text(args, "q"), since=since, until=until,
        channel=_choice(args, "channel", CHANNELS), flagged=_flag(args.get("flagged")),
    )


def _bad(name: str, why: str) -> InvalidInput:
    return InvalidInput(f"Filter {name!r} {why}.", code="invalid_filter")


def _text(args, name: str) -> str | None:
    value = args.get(name)
    if value is None or value.strip() == "":
        return None
    if len(value) > MAX_TEXT:
        raise _bad(name, f"must be at most {MAX_TEXT} characters")
    return value.strip()


def _upper(value: str | None) -> str | None:
    return value.upper() if value else None


def _phone(value: str | None) -> str | None:
    """Normalised when it is a Kenyan number; anything else is matched as typed (and finds nothing)."""
    if value is None:
        return None
    try:
        return normalize_phone(value)
    except InvalidInput:
        return value


def _statuses(raw: str | None) -> tuple[str, ...] | None:
    if raw is None or raw.strip() == "":
        return None
    values = tuple(dict.fromkeys(part.strip().upper() for part in raw.split(",") if part.strip()))
    valid = {s.value for s in PaymentStatus}
    wrong = [v for v in values if v not in valid]
    if wrong or not values:
        raise _bad("status", f"must be a comma list of {', '.join(s.value for s in PaymentStatus)}")
    return values


def _choice(args, name: str, choices: tuple) -> str | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    if value.lower() not in choices:
        raise _bad(name, f"must be one of {', '.join(choices)}")
    return value.lower()


def _flag(raw: str | None) -> bool | None:
    if raw is None or raw == "":
        return None
    if raw.lower() not in ("true", "false"):
        raise _bad("flagged", "must be true or false")
    return raw.lower() == "true"


def parse_time(args, name: str, *, end: bool) -> datetime | None:
    """An ISO date or date-time to naive UTC."""
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            return datetime.combine(day + timedelta(days=1) if end else day, time())
        value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except (ValueError, OverflowError):
        raise _bad(name, "must be an ISO date (2024-05-01) or date-time (2024-05-01T08:30:00Z)") from None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _conditions(f: PaymentFilters) -> list:
    """One indexed condition per filter that is set."""
    conds = []
    if f.statuses:
        conds.append(Payment.status.in_(list(f.statuses)))
    if f.phone:
        conds.append(Payment.phone_hash == f.phone)  # the field hashes the phone: indexed, exact
    if f.account:
        conds.append(Payment.account == f.account)
    if f.q:
        conds.append(_reference_or_receipt(f.q))
    if f.since:
        conds.append(Payment.created_at >= f.since)
    if f.until:
        conds.append(Payment.created_at < f.until)
    if f.channel:
        conds.append(Payment.channel == f.channel)
    if f.flagged is not None:
        conds.append(Payment.flagged == f.flagged)
    return conds


def of_merchant(merchant_id: int):
    """The payments a merchant may read: those its key created and those that paid its payment requests."""
    its_requests = PaymentRequest.select(PaymentRequest.id).where(PaymentRequest.merchant == merchant_id)
    return (Payment.merchant == merchant_id) | (Payment.request.in_(its_requests))


def list_payments(filters: PaymentFilters, *, before_id: int | None = None, limit: int = 50,
                  merchant_id: int | None = None):
    """(payments newest first, the id to continue below or None); with ``merchant_id`` only that merchant's.

    Without a time filter: ORDER BY id DESC, WHERE id < cursor. With from/to: ORDER BY created_at DESC, id DESC,
    continuing after the cursor's row, so the created_at index yields the page already in order (id order
    would make the database fetch and sort the whole period first)."""
    conds = _conditions(filters)
    if merchant_id is not None:
        conds.append(of_merchant(merchant_id))
    timed = filters.since is not None or filters.until is not None
    if before_id is not None:
        last = Payment.get_or_none(Payment.id == before_id) if timed else None
        if last is None:
            conds.append(Payment.id < before_id)
        else:
            conds.append(Payment.created_at <= last.created_at)
            conds.append((Payment.created_at < last.created_at) | (Payment.id < before_id))
    order = (Payment.created_at.desc(), Payment.id.desc()) if timed else (Payment.id.desc(),)
    return keyset_page(Payment.select().order_by(*order), conds, limit)


def keyset_page(query, conds: list, limit: int):
    """(up to ``limit`` rows of the ordered query under conds, the last row's id when more follow, else None):
    one row more than asked is read to know whether there is a next page."""
    if conds:
        query = query.where(*conds)
    rows = list(query.limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more else None)


PREFIX_MIN = 4  # "LPXQ" finds LPXQ7K3M9: shorter prefixes would match too much to be a search


def _reference_or_receipt(q: str):
    """A reference or M-Pesa receipt, whole or by its first characters (at least PREFIX_MIN): a range on
    their unique indexes (q <= value < q with its last character + 1), which both SQLite and PostgreSQL read
    as an index range, unlike LIKE."""
    upper = q.upper()
    exact = (Payment.reference == upper) | Payment.mpesa_receipt.in_(sorted({q, upper}))
    if len(upper) < PREFIX_MIN:
        return exact
    after = upper[:-1] + chr(ord(upper[-1]) + 1)
    return exact | ((Payment.reference >= upper) & (Payment.reference < after)) | (
        (Payment.mpesa_receipt >= upper) & (Payment.mpesa_receipt < after))
