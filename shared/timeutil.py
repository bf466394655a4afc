"""Time helpers: the database stores naive UTC; Daraja speaks Nairobi time (UTC+3, no DST)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

NAIROBI = timezone(timedelta(hours=3), "EAT")


def utcnow() -> datetime:
    """Naive UTC now, the form every timestamp column holds."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def nairobi_timestamp(now: datetime | None = None) -> str:
    """Daraja's ``YYYYMMDDHHmmss`` in Nairobi time."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return now.astimezone(NAIROBI).strftime("%Y%m%d%H%M%S")


def parse_nairobi_timestamp(value) -> datetime | None:
    """``20191219102115`` (number or string, Nairobi time) to naive UTC; None when unreadable."""
    try:
        local = datetime.strptime(str(int(value)), "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI)
    except (TypeError, ValueError):
        return None
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def iso(dt: datetime | None) -> str | None:
    """ISO-8601 with a Z, for JSON."""
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None
