"""Re-matching for the reconcile job: open exceptions that a later statement or a newer payment answers.

Why a module of its own: it runs on a schedule (gateway.jobs.registry), long after any import and over every
open exception, while an import only borrows close_found() from it; apart, service.py stays the import itself.
"""
from __future__ import annotations

from peewee import SQL, fn

from shared.db import locked, retry_locked, write_tx
from shared.models import Payment, ReconException, StatementLine

from ..payments.transitions import flag
from . import statement
from .bulk import _candidates
from .common import (
    ACTOR,
    DUPLICATE,
    LOADED,
    MISSING_IN_LIPA,
    MISSING_IN_STATEMENT,
    UNMATCHED,
    _resolve,
)
from .matcher import WINDOW, Candidate, FuzzyIndex


def close_found() -> int:
    """Resolve open missing_in_statement exceptions whose payment a later statement now holds."""
    on_line = StatementLine.select(SQL("1")).where(StatementLine.payment == ReconException.payment,
                                                   StatementLine.match != UNMATCHED)
    rows = list(ReconException.select().where(ReconException.kind == MISSING_IN_STATEMENT,
                                              ReconException.status == "OPEN", fn.EXISTS(on_line)))
    for row in rows:
        _resolve(row, ACTOR, "found on a later M-Pesa statement")
    return len(rows)


@retry_locked
def rematch_open() -> dict:
    """For the reconcile job: close what later statements answered; point out payments that appeared since."""
    with write_tx():
        return {"resolved": close_found(), "possible_duplicates": _pair_open_lines()}


def _pair_open_lines() -> int:
    """Lines recorded as found-only-in-statement that a payment created or changed since now fits: the same
    money recorded twice, so a duplicate exception (once per pair) and a flag for staff."""
    rows = list(StatementLine.select(StatementLine, ReconException.id.alias("exc_id")).join(
        ReconException, on=(ReconException.line == StatementLine.id)).where(
        StatementLine.match == UNMATCHED, ReconException.kind == MISSING_IN_LIPA,
        ReconException.status == "OPEN").objects())
    lines = {row.receipt: row for row in rows}
    parsed = [statement.make_line(r.line_no, r.receipt, r.completed_at, r.amount, r.details, r.account,
                                  r.other_party) for r in rows]
    not_on_line = ~fn.EXISTS(StatementLine.select(SQL("1")).where(StatementLine.payment == Payment.id))
    pool = {c.id: c for line in parsed for c in _candidates(
        Payment.status.in_(LOADED), Payment.mpesa_receipt.is_null(), not_on_line,
        Payment.created_at.between(line.completed_at - WINDOW, line.completed_at + WINDOW)
        | Payment.completed_at.between(line.completed_at - WINDOW, line.completed_at + WINDOW))}
    index, found = FuzzyIndex(pool.values()), 0
    for line in parsed:
        cand, _ = index.take(line)
        if cand is not None and _point_out(lines[line.receipt], cand):
            found += 1
    return found


def _point_out(row: StatementLine, cand: Candidate) -> bool:
    """A duplicate exception for (line, payment) unless there is one; the payment is flagged."""
    if ReconException.select().where(ReconException.line == row.id, ReconException.payment == cand.id).exists():
        return False
    reason = (f"{cand.reference} ({cand.status}) fits statement receipt {row.receipt}, which is open for review "
              f"as money only the statement shows: the same money?")
    flag(locked(Payment, cand.id), reason, actor=ACTOR, alert_kind="recon_duplicate")
    ReconException.create(statement=row.statement_id, kind=DUPLICATE, payment=cand.id, line=row.id, details=reason)
    return True
