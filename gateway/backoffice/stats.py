"""Dashboard numbers for a period: aggregate SQL only (GROUP BY), so it stays fast on millions of payments.

Flask-free. Periods are Nairobi days (UTC+3, no DST): ``from``/``to`` ISO dates, ``to`` inclusive; a
date-time without a zone is Nairobi time too. Rates are None when nothing was decided yet. Callback lag
is taken over the latest ``LAG_SAMPLE`` callbacks of the period (a bounded sample; exact below it).
"""
from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone

from peewee import SQL, Case, fn

from shared.db import is_sqlite
from shared.errors import InvalidInput
from shared.models import Notification, Payment, PaymentEvent, Refund
from shared.states import ACTIVE, FINAL_UNPAID, PAID, PaymentStatus
from shared.timeutil import NAIROBI, iso, utcnow

SUCCESS = sorted(s.value for s in PAID)
UNPAID = sorted(s.value for s in FINAL_UNPAID)
REFUSED = ["CANCELLED", "FAILED"]  # the statuses a ResultCode explains
CALLBACK_OUTCOMES = ["CANCELLED", "COMPLETED", "FAILED"]
MAX_DAYS = 92
LAG_SAMPLE = 5000


def parse_period(args, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """(since, until) as naive UTC from ``from``/``to``; today in Nairobi by default; 400 when wrong."""
    today = (now or utcnow()).replace(tzinfo=timezone.utc).astimezone(NAIROBI).date()
    since = _bound(args.get("from") or today.isoformat(), "from", end=False)
    until = _bound(args.get("to") or today.isoformat(), "to", end=True)
    if since >= until:
        raise InvalidInput("from must be before to.", code="invalid_period")
    if until - since > timedelta(days=MAX_DAYS):
        raise InvalidInput(f"The period may be at most {MAX_DAYS} days.", code="invalid_period")
    return since, until


def _bound(raw: str, name: str, *, end: bool) -> datetime:
    """An ISO date (a whole Nairobi day; the day after it for an end) or date-time, to naive UTC."""
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw) + timedelta(days=1 if end else 0)
            local = datetime.combine(day, time(), NAIROBI)
        else:
            local = datetime.fromisoformat(raw)
            local = local if local.tzinfo else local.replace(tzinfo=NAIROBI)
        return local.astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{name} must be an ISO date (2024-05-01) or date-time.", code="invalid_period") from None


def summary(since: datetime, until: datetime, *, now: datetime | None = None, stuck_after_s: int = 900) -> dict:
    """Every number of the dashboard for [since, until)."""
    now = now or utcnow()
    grid = payment_grid(since, until)
    by_status = payments_by_status(grid)
    decided_ok = sum(by_status[s]["count"] for s in SUCCESS)
    decided_bad = sum(by_status[s]["count"] for s in UNPAID)
    decided = decided_ok + decided_bad
    return {
        "from": iso(since), "to": iso(until), "timezone": "Africa/Nairobi",
        "payments": {  # every attempt created in the period, paid or not: not money (see collected)
            "count": sum(v["count"] for v in by_status.values()),
            "amount": sum(v["amount"] for v in by_status.values()),
            "amount_is": "attempted",
            "by_status": by_status,
        },
        "collected": collected(since, until),
        "refunded": refunded(since, until),
        "decided": decided,
        "success_rate": _ratio(decided_ok, decided),
        "failure_rate": _ratio(decided_bad, decided),
        "failures_by_result_code": result_codes(grid),
        "callback_lag_s": callback_lag(since, until),
        "notifications": notifications(since, until),
        **active_counts(now, stuck_after_s),
        "hourly": hourly(grid, since, until),
    }


def collected(since: datetime, until: datetime, *, of=None, gross: bool = False) -> dict:
    """Money M-Pesa said was paid in the period (dated by completed_at: the callback's, the C2B's or the
    statement's own time), net of what has been refunded of it (``gross``: as paid). Failed and cancelled
    attempts never count. ``of``: a condition on Payment keeping one merchant's (payments_query.of_merchant)."""
    total = fn.SUM(Payment.amount if gross else Payment.amount - Payment.refunded_amount)
    where = [_period(Payment.completed_at, since, until), Payment.status.in_(SUCCESS)]
    where += [of] if of is not None else []
    count, amount = Payment.select(fn.COUNT(Payment.id), total).where(*where).tuples().get()
    return {"count": int(count or 0), "amount": int(amount or 0)}


def refunded(since: datetime, until: datetime, *, of=None) -> dict:
    """Refunds M-Pesa completed in the period (a completed refund row is not changed again); ``of`` as above."""
    where = [Refund.status == "COMPLETED", _period(Refund.updated_at, since, until)]
    query = Refund.select(fn.COUNT(Refund.id), fn.SUM(Refund.amount))
    if of is not None:
        query = query.join(Payment, on=(Refund.payment == Payment.id))
        where.append(of)
    count, amount = query.where(*where).tuples().get()
    return {"count": int(count or 0), "amount": int(amount or 0)}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _period(field, since: datetime, until: datetime):
    return (field >= since) & (field < until)


def payment_grid(since: datetime, until: datetime) -> dict:
    """{(hour, status, result code): (count, amount)} for payments created in the period: one range scan of
    the (hour, status, result_code, created_at, amount) index, already in GROUP BY order, feeds the status
    totals, the ResultCode breakdown and the hourly series."""
    bucket = hour_bucket(Payment.created_at)
    first, last = (moment.replace(minute=0, second=0, microsecond=0) for moment in (since, until))
    if (first, last) == (since, until):  # whole hours (every date period): the hour range alone is exact
        where = (bucket >= first) & (bucket < last)
    else:
        where = (bucket >= first) & (bucket <= last) & _period(Payment.created_at, since, until)
    query = (Payment.select(bucket, Payment.status, Payment.result_code, fn.COUNT(Payment.id), fn.SUM(Payment.amount))
             .where(where).group_by(bucket, Payment.status, Payment.result_code))
    return {(_dt(hour), status, code): (int(count), int(amount or 0))
            for hour, status, code, count, amount in query.tuples()}


def payments_by_status(grid: dict) -> dict:
    """{status: {count, amount}}, every status present."""
    out = {s.value: {"count": 0, "amount": 0} for s in PaymentStatus}
    for (_, status, _), (count, amount) in grid.items():
        row = out.setdefault(status, {"count": 0, "amount": 0})
        row["count"] += count
        row["amount"] += amount
    return out


def result_codes(grid: dict) -> list[dict]:
    """How many FAILED/CANCELLED payments each M-Pesa ResultCode explains, most frequent first."""
    from gateway.providers.daraja.result_codes import RESULTS

    counts: dict[str, int] = {}
    for (_, status, code), (count, _) in grid.items():
        if status in REFUSED:
            counts[code or "unknown"] = counts.get(code or "unknown", 0) + count
    rows = sorted(counts.items(), key=lambda row: (-row[1], row[0]))
    return [{"result_code": code, "count": count, "description": RESULTS.get(code, (None, ""))[1]}
            for code, count in rows]


def callback_lag(since: datetime, until: datetime, *, sample: int = LAG_SAMPLE) -> dict:
    """p50/p95 seconds from PROCESSING to the callback's outcome, over the period's latest callbacks."""
    start = PaymentEvent.alias()
    started = (start.select(fn.MAX(start.created_at))
               .where(start.payment == PaymentEvent.payment, start.kind == "transition",
                      start.to_status == "PROCESSING", start.id < PaymentEvent.id))
    rows = (PaymentEvent.select(PaymentEvent.created_at.coerce(False), started.alias("started"))
            .where(PaymentEvent.kind == "transition", PaymentEvent.from_status == "PROCESSING",
                   PaymentEvent.to_status.in_(CALLBACK_OUTCOMES), _period(PaymentEvent.created_at, since, until))
            .order_by(PaymentEvent.created_at.desc()).limit(sample).tuples())
    lags = sorted(max(0.0, (_dt(at) - _dt(begun)).total_seconds()) for at, begun in rows if begun is not None)
    return {"p50": percentile(lags, 50), "p95": percentile(lags, 95), "samples": len(lags)}


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of sorted values (None for none)."""
    if not values:
        return None
    return round(values[max(0, math.ceil(pct / 100 * len(values)) - 1)], 3)


def _dt(value) -> datetime:
    """A timestamp from an aggregate, which SQLite hands back as text."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def notifications(since: datetime, until: datetime) -> dict:
    """Outbox rows created in the period by status, and the delivery rate of the SMS sent."""
    query = (Notification.select(Notification.status, fn.COUNT(Notification.id))
             .where(_period(Notification.created_at, since, until)).group_by(Notification.status))
    by_status = {status: int(count) for status, count in query.tuples()}
    tried = sum(by_status.get(s, 0) for s in ("SENT", "DELIVERED", "FAILED"))
    return {"by_status": by_status, "delivery_rate": _ratio(by_status.get("DELIVERED", 0), tried)}


def active_counts(now: datetime, stuck_after_s: int) -> dict:
    """Payments waiting right now (whatever the period), and those waiting longer than stuck_after_s."""
    active = Payment.status.in_(sorted(s.value for s in ACTIVE))
    cutoff = now - timedelta(seconds=stuck_after_s)
    stuck = fn.SUM(Case(None, [(Payment.updated_at < cutoff, 1)], 0))
    count, stuck_count = Payment.select(fn.COUNT(Payment.id), stuck).where(active).tuples().get()
    return {"pending": int(count or 0), "stuck": int(stuck_count or 0)}


def hour_bucket(field):
    """The SQL that truncates a timestamp to its hour: strftime on SQLite, date_trunc on PostgreSQL."""
    if is_sqlite():
        return fn.strftime(SQL("'%Y-%m-%d %H:00:00'"), field)
    return fn.date_trunc(SQL("'hour'"), field)


def hourly(grid: dict, since: datetime, until: datetime) -> list[dict]:
    """One row per hour of the period (UTC hours, which are Nairobi hours too): count, completed, amount."""
    totals: dict[datetime, list[int]] = {}
    for (hour, status, _), (count, amount) in grid.items():
        row = totals.setdefault(hour, [0, 0, 0])
        row[0] += count
        if status in SUCCESS:
            row[1] += count
            row[2] += amount
    rows, hour = [], since.replace(minute=0, second=0, microsecond=0)
    while hour < until:
        count, completed, amount = totals.get(hour, (0, 0, 0))
        rows.append({"hour": iso(hour), "count": count, "completed": completed, "amount_completed": amount})
        hour += timedelta(hours=1)
    return rows
