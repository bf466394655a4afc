"""The audit log as a list: who did what, to what, when and why, filtered, newest first (Flask-free).

Every row is listed, whatever wrote it: staff actions on payments, jobs, alerts, statements, sessions and
keys, and the automatic money decisions. Filters are exact matches on indexed columns or a time range;
an unknown filter name is a 400, as on the payment list.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.errors import InvalidInput
from shared.models import AuditLog

from .payments_query import keyset_page, parse_time

TEXT_FILTERS = ("actor", "action", "target_type", "target_id")
MAX_TEXT = 64


@dataclass(frozen=True)
class AuditFilters:
    exact: dict  # column name -> value
    since: datetime | None = None
    until: datetime | None = None


def parse_audit_filters(args, extra: tuple = ("limit", "cursor")) -> AuditFilters:
    unknown = sorted(set(args) - set(TEXT_FILTERS) - {"from", "to"} - set(extra))
    if unknown:
        raise _bad(unknown[0], "is not a filter of this list")
    exact = {}
    for name in TEXT_FILTERS:
        value = (args.get(name) or "").strip()
        if len(value) > MAX_TEXT:
            raise _bad(name, f"must be at most {MAX_TEXT} characters")
        if value:
            exact[name] = value
    since, until = parse_time(args, "from", end=False), parse_time(args, "to", end=True)
    if since and until and since >= until:
        raise _bad("from", "must be before to")
    return AuditFilters(exact=exact, since=since, until=until)


def _bad(name: str, why: str) -> InvalidInput:
    return InvalidInput(f"Filter {name!r} {why}.", code="invalid_filter")


def list_audit(filters: AuditFilters, *, before_id: int | None = None, limit: int = 50):
    """(rows newest first by id, the id to continue below or None)."""
    conds = [getattr(AuditLog, name) == value for name, value in filters.exact.items()]
    if filters.since:
        conds.append(AuditLog.created_at >= filters.since)
    if filters.until:
        conds.append(AuditLog.created_at < filters.until)
    if before_id is not None:
        conds.append(AuditLog.id < before_id)
    return keyset_page(AuditLog.select().order_by(AuditLog.id.desc()), conds, limit)
