"""Importing an M-Pesa statement and reconciling it with Lipa's payments, all in one write transaction.

The same file twice is one import; lines an earlier (overlapping) statement already holds are skipped.
Payments the statement confirms go COMPLETED -> SETTLED; whatever disagrees becomes a ReconException
that staff resolve with a note. Knows nothing of Flask.

Settling many payments at once and the raw-row SQL live in bulk, the reconcile job's re-matching in rematch,
so that each module stays readable; their public names are imported here too (``X as X`` where only
re-exported), so callers of service, and tests patching service.settle_many, work as before.
"""
from __future__ import annotations

import hashlib
import logging

import peewee
from peewee import SQL, chunked, fn

from shared.db import db, for_update, is_sqlite, locked, retry_locked, write_tx
from shared.errors import InvalidInput, NotFound
from shared.models import Alert, AuditLog, Payment, PaymentEvent, ReconException, StatementImport, StatementLine
from shared.timeutil import utcnow

from ..payments.transitions import flag, raise_alert
from . import matcher, statement
from .bulk import BULK_SAFE_LISTENERS as BULK_SAFE_LISTENERS
from .bulk import EVENT_FIELDS, PARAMS, _candidates, _insert_rows, _select_in, settle_many
from .common import (
    ACTOR,
    AMOUNT_MISMATCH,
    DUPLICATE,
    FUZZY,
    LOADED,
    MISSING_IN_LIPA,
    MISSING_IN_STATEMENT,
    RECEIPT,
    UNMATCHED,
    UNPAID_IN_LIPA,
    S,
    _resolve,
    open_exception,
)
from .matcher import WINDOW, Candidate, FuzzyIndex
from .rematch import close_found
from .rematch import rematch_open as rematch_open

log = logging.getLogger(__name__)
RECON_ALERTS = ("recon_mismatch", "recon_unpaid_in_lipa", "recon_missing_in_statement")
ALREADY_PAID = (S.SETTLED.value, S.REFUND_PENDING.value, S.REFUNDED.value)
IMPORT_LOCK = 0x4C495041  # PostgreSQL advisory lock: one import at a time
LINE_FIELDS = [StatementLine.statement, StatementLine.line_no, StatementLine.receipt, StatementLine.completed_at,
               StatementLine.details, StatementLine.amount, StatementLine.account, StatementLine.other_party,
               StatementLine.payment, StatementLine.match]


class _DryRun(Exception):
    """Raised inside the import's transaction once its summary is known, so everything rolls back."""

    def __init__(self, summary: dict):
        super().__init__("dry run")
        self.summary = summary


def earlier_import(digest: str) -> StatementImport | None:
    """The run of a statement with these bytes already (``digest`` = their SHA-256): the same file twice is
    one run, whichever path (import, preview, background upload) sees it again."""
    return StatementImport.get_or_none(StatementImport.sha256 == digest)


def import_statement(data: bytes, *, filename: str = "", uploaded_by: str = "", config=None) -> StatementImport:
    """Read, record and reconcile a statement; the same bytes again return the first import, unchanged.

    ``config`` decides the optional settled SMS; without it, the app's registered notifier's config does.
    """
    digest = hashlib.sha256(data).hexdigest()
    existing = earlier_import(digest)
    if existing is not None:
        return existing
    return import_parsed(parse_statement(data), digest, filename=filename, uploaded_by=uploaded_by, config=config)


def import_parsed(parsed: statement.Statement, digest: str, *, filename: str = "", uploaded_by: str = "",
                  config=None) -> StatementImport:
    """A statement already read (``digest`` = SHA-256 of its bytes), reconciled in one transaction."""
    try:
        return _import(parsed, digest, filename, uploaded_by, config)
    except peewee.IntegrityError:
        existing = earlier_import(digest)
        if existing is None:
            raise
        return existing


def preview_statement(data: bytes, *, filename: str = "", uploaded_by: str = "") -> dict:
    """What importing the statement would do, with nothing written: the very same reconciliation run in a
    transaction that is rolled back (so the preview can never disagree with the import), summarised.

    A file already imported previews as that import, with ``already_imported``."""
    digest = hashlib.sha256(data).hexdigest()
    existing = earlier_import(digest)
    if existing is not None:
        return {**run_summary(existing.id), "dry_run": True, "already_imported": True}
    parsed = parse_statement(data)
    try:
        _import(parsed, digest, filename, uploaded_by, None, dry_run=True)
    except _DryRun as done:
        return done.summary
    raise AssertionError("a dry run always rolls back")  # pragma: no cover


def parse_statement(data: bytes) -> statement.Statement:
    try:
        return statement.parse(data)
    except statement.StatementError as exc:
        raise InvalidInput(f"The statement cannot be read. {exc}", code="invalid_statement") from None


@retry_locked
def _import(parsed: statement.Statement, digest: str, filename: str, uploaded_by: str, config, *,
            dry_run: bool = False) -> StatementImport:
    with write_tx():
        existing = earlier_import(digest)
        if existing is not None:
            return existing
        if not is_sqlite():
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (IMPORT_LOCK,))
        imp = StatementImport.create(sha256=digest, filename=(filename or "")[:255],
                                     uploaded_by=(uploaded_by or "")[:64], period=parsed.period_text()[:100])
        run = Run(imp, config)
        run.reconcile(parsed)
        if dry_run:
            raise _DryRun(run.preview())
        return imp


class Run:
    """One import's work inside its transaction: links to write, payments to settle, problems to record."""

    def __init__(self, imp: StatementImport, config):
        self.imp, self.config = imp, config
        self.links: dict[str, tuple[int, str]] = {}  # receipt -> (payment id, match)
        self.settle: list[tuple[int, str]] = []  # (payment id, event reason)
        self.problems: list[tuple[str, str | None, int | None, str]] = []  # kind, line receipt, payment id, details
        self.events: list[tuple] = []  # PaymentEvent rows (EVENT_FIELDS) for receipts attached
        self.unknown: list[int] = []  # amounts of lines that match no payment (money Lipa does not know)
        self.settled = self.lines = self.matched = self.exceptions = 0

    def reconcile(self, parsed: statement.Statement) -> None:
        """The whole statement in this transaction: match, write the lines, settle, exceptions, counts."""
        fresh, repeats, skipped = split(self.imp.id, parsed)
        by_receipt, index = load_payments(fresh, parsed.period())
        self.match(fresh, by_receipt, index)
        self.close(parsed.period(), repeats, skipped)

    def match(self, fresh: list, by_receipt: dict, index: FuzzyIndex) -> None:
        """One batch of new lines (all of them, or one chunk of a background import): matched, written,
        settled, their exceptions recorded; the counts kept on the run until ``close``."""
        plan = matcher.plan(fresh, by_receipt, index)
        self._apply(plan)
        _insert_lines(self.imp.id, fresh, self.links)
        _insert_rows(PaymentEvent, EVENT_FIELDS, self.events)
        self.settled += settle_many(self.settle, config=self.config)
        self.lines += len(fresh)
        self.matched += plan.matched
        self.links, self.settle, self.events = {}, [], []
        self._write_problems()

    def close(self, period, repeats: list, skipped: int) -> None:
        """After the last batch: duplicates within the file, payments the statement lacks, counts, audit."""
        first_payment = _line_payments(self.imp.id, [first.receipt for _, first in repeats])
        for repeat, first in repeats:
            self.problems.append((DUPLICATE, first.receipt, first_payment.get(first.receipt),
                                  f"receipt {first.receipt} appears again on line {repeat.line_no} "
                                  f"({repeat.amount} KES; first on line {first.line_no})"))
        if period:
            self._missing_in_statement(*period)
        self._write_problems()
        self._finish(skipped)

    def _apply(self, plan: matcher.Plan) -> None:
        for line, cand in plan.by_receipt:
            self.links[line.receipt] = (cand.id, RECEIPT)
            self._confirmed(line, cand)
        for line, cand in list(plan.fuzzy):
            if self._guessed(line, cand):
                self.links[line.receipt] = (cand.id, FUZZY)
            else:
                plan.fuzzy.remove((line, cand))
                plan.unmatched.append((line, []))
        for line, cand in plan.mismatched:
            self.links[line.receipt] = (cand.id, UNMATCHED)
            payment = locked(Payment, cand.id)
            reason = f"M-Pesa statement shows {line.amount} KES for receipt {line.receipt}; Lipa has {payment.amount}"
            flag(payment, reason, actor=ACTOR, alert_kind="recon_mismatch")
            self.problems.append((AMOUNT_MISMATCH, line.receipt, cand.id, reason))
        for line, tied in plan.unmatched:
            self.links[line.receipt] = (None, UNMATCHED)
            self.unknown.append(line.amount)
            maybe = f"; could be {', '.join(c.reference for c in tied)}" if tied else ""
            self.problems.append((MISSING_IN_LIPA, line.receipt, None,
                                  f"{line.amount} KES on line {line.line_no} (receipt {line.receipt}) not in Lipa: "
                                  f"for review; an admin confirms it with M-Pesa{maybe}"[:255]))

    def preview(self) -> dict:
        """The run's summary as the dry run shows it (read inside the transaction, before the rollback)."""
        summary = {key: value for key, value in run_summary(self.imp.id).items() if key not in ("id", "status")}
        return {**summary, "dry_run": True, "already_imported": False, "would_settle": self.settled,
                "unknown_money": {"count": len(self.unknown), "amount": sum(self.unknown)}}

    def _reason(self, line: statement.Line) -> str:
        return f"on M-Pesa statement {self.imp.id}, line {line.line_no} (receipt {line.receipt})"

    def _confirmed(self, line: statement.Line, cand: Candidate) -> None:
        """Same receipt, same amount: settle a COMPLETED one. One Lipa holds unpaid is an exception for
        review: a statement line is no proof of payment (an admin confirms it with M-Pesa)."""
        if cand.status in ALREADY_PAID:
            return
        if cand.status != S.COMPLETED.value:
            self._unpaid(line, cand)
            return
        self.settle.append((cand.id, self._reason(line)))

    def _unpaid(self, line: statement.Line, cand: Candidate) -> None:
        """A line that fits a payment Lipa holds unpaid: nothing moves; staff review it with the evidence."""
        reason = (f"{line.amount} KES, receipt {line.receipt}, on statement line {line.line_no} fits "
                  f"{cand.reference}, which is {cand.status}: for review; an admin confirms it with M-Pesa")
        raise_alert("recon_unpaid_in_lipa", reason[:255], payment=locked(Payment, cand.id))
        self.problems.append((UNPAID_IN_LIPA, line.receipt, cand.id, reason[:255]))

    def _guessed(self, line: statement.Line, cand: Candidate) -> bool:
        """Attach the receipt (completing a payment still waiting) and settle; False if it changed meanwhile."""
        if cand.status == S.COMPLETED.value:
            paid = f"Paid. M-Pesa receipt {line.receipt}."
            attached = Payment.update(mpesa_receipt=line.receipt, status_message=paid, updated_at=utcnow()).where(
                Payment.id == cand.id, Payment.status == S.COMPLETED.value, Payment.mpesa_receipt.is_null()).execute()
            if not attached:
                return False
            self.events.append((cand.id, "receipt", cand.status, cand.status, ACTOR,
                                f"receipt {line.receipt} {self._reason(line)}"[:255], utcnow()))
        else:
            payment = locked(Payment, cand.id)
            if payment.mpesa_receipt or payment.status not in matcher.FUZZY_UNPAID:
                return False
            self._unpaid(line, cand)
            return True
        self.settle.append((cand.id, self._reason(line)))
        return True

    def _missing_in_statement(self, start, end) -> None:
        """COMPLETED payments of the period that no statement line holds: suspicious, flagged."""
        for payment in for_update(_not_on_any_statement(start, end)):
            reason = f"completed in Lipa but not on M-Pesa statement {self.imp.id} ({self.imp.period})"
            flag(payment, reason, actor=ACTOR, alert_kind="recon_missing_in_statement")
            self.problems.append((MISSING_IN_STATEMENT, None, payment.id, reason[:255]))

    def _write_problems(self) -> None:
        receipts = [receipt for _, receipt, _, _ in self.problems if receipt]
        line_ids = _line_ids(self.imp.id, receipts)
        for kind, receipt, payment_id, details in self.problems:
            ReconException.create(statement=self.imp, kind=kind, payment=payment_id,
                                  line=line_ids.get(receipt), details=details[:255])
        self.exceptions += len(self.problems)
        self.problems = []

    def save_counts(self) -> None:
        """Add this run's counts to the import's (a background import adds one chunk's at a time)."""
        self.imp.lines += self.lines
        self.imp.matched += self.matched
        self.imp.exceptions += self.exceptions
        self.imp.save()
        self.lines = self.matched = self.exceptions = 0

    def _finish(self, skipped: int) -> None:
        """Counts saved, exceptions a statement has now answered closed, audited."""
        settled = self.settled
        self.save_counts()
        closed = close_found()
        counts = {"lines": self.imp.lines, "matched": self.imp.matched, "settled": settled,
                  "exceptions": self.imp.exceptions, "known_receipts_skipped": skipped, "closed_elsewhere": closed}
        AuditLog.create(actor=self.imp.uploaded_by or ACTOR, action="statement_import", target_type="statement",
                        target_id=str(self.imp.id), reason=self.imp.filename[:500], details=counts)
        log.info("statement %s imported: %s", self.imp.id, counts)


def split(import_id: int, parsed: statement.Statement) -> tuple[list, list, int]:
    """(new lines, (repeat, first) pairs within the file, lines another statement already holds): the same
    answer before the first batch and on a resumed background import (its own lines are not "known")."""
    known = _known_receipts([line.receipt for line in parsed.lines], besides=import_id)
    return matcher.split_repeats(parsed.lines, known)


def _known_receipts(receipts: list[str], *, besides: int) -> set[str]:
    """The receipts an earlier statement (not import ``besides``) already holds."""
    sql = f'SELECT "receipt" FROM "statement_line" WHERE "statement_id" != {int(besides)} AND "receipt" IN'
    return {r for (r,) in _select_in(sql, receipts)}


def _line_payments(import_id: int, receipts: list[str]) -> dict[str, int | None]:
    sql = (f'SELECT "receipt", "payment_id" FROM "statement_line" WHERE "statement_id" = {int(import_id)} '
           'AND "receipt" IN')
    return dict(_select_in(sql, receipts))


def load_payments(lines: list, period) -> tuple[dict[str, Candidate], FuzzyIndex]:
    """Payments of the period (one query), plus any other payment holding one of the receipts (usually none)."""
    if not lines:
        return {}, FuzzyIndex([])
    low, high = period[0] - WINDOW, period[1] + WINDOW
    for line in lines:
        low, high = min(low, line.completed_at - WINDOW), max(high, line.completed_at + WINDOW)
    pool = _candidates(Payment.status.in_(LOADED), Payment.created_at.between(low, high)
                       | Payment.completed_at.between(low, high))
    by_receipt = {cand.receipt: cand for cand in pool if cand.receipt}
    wanted = [line.receipt for line in lines if line.receipt not in by_receipt]
    for chunk in chunked(wanted, PARAMS):
        by_receipt.update((c.receipt, c) for c in _candidates(Payment.mpesa_receipt.in_(chunk)))
    return by_receipt, FuzzyIndex(pool)


def _insert_lines(statement_id: int, lines: list, links: dict) -> None:
    seal = StatementLine.details.db_value  # raw rows bypass the model: seal the payer's details here
    rows = ((statement_id, line.line_no, line.receipt, line.completed_at, seal(line.details), line.amount,
             line.account, seal(line.other_party), *links[line.receipt]) for line in lines)
    _insert_rows(StatementLine, LINE_FIELDS, rows)


def _line_ids(statement_id: int, receipts: list[str]) -> dict[str, int]:
    sql = f'SELECT "receipt", "id" FROM "statement_line" WHERE "statement_id" = {int(statement_id)} AND "receipt" IN'
    return dict(_select_in(sql, receipts))


def _not_on_any_statement(start, end):
    """COMPLETED in [start, end], on no statement line (by link or receipt), never reported missing."""
    linked = StatementLine.select(SQL("1")).where(StatementLine.payment == Payment.id)
    by_receipt = StatementLine.select(SQL("1")).where(StatementLine.receipt == Payment.mpesa_receipt)
    reported = ReconException.select(SQL("1")).where(ReconException.payment == Payment.id,
                                                     ReconException.kind == MISSING_IN_STATEMENT)
    return Payment.select().where(Payment.status == S.COMPLETED.value, Payment.completed_at.between(start, end),
                                  ~fn.EXISTS(linked), ~fn.EXISTS(by_receipt), ~fn.EXISTS(reported))


def resolve_exception(exc_id: int, *, staff: str, note: str) -> ReconException:
    """Close an exception with who, when and why (a note is required); resolving twice is refused."""
    note = (note or "").strip()
    if not note:
        raise InvalidInput("Say why in a note to resolve an exception.", code="missing_note")
    with write_tx():
        row = open_exception(exc_id)
        _resolve(row, str(staff), note)
        if row.payment_id:  # the alert the exception raised is answered too: nothing left open twice
            Alert.update(acknowledged=True).where(Alert.payment == row.payment_id, Alert.kind.in_(RECON_ALERTS),
                                                  Alert.acknowledged == False).execute()  # noqa: E712 - SQL
    return row


def run_summary(import_id: int) -> dict:
    """An import's counts: lines by match kind, exceptions by kind and status (for the API)."""
    imp = StatementImport.get_or_none(StatementImport.id == import_id)
    if imp is None:
        raise NotFound("No such reconciliation run.")
    by_match = {RECEIPT: 0, FUZZY: 0, UNMATCHED: 0}
    by_match.update(StatementLine.select(StatementLine.match, fn.COUNT(StatementLine.id)).where(
        StatementLine.statement == imp.id).group_by(StatementLine.match).tuples())
    exceptions: dict[str, dict[str, int]] = {}
    for kind, status, count in ReconException.select(
            ReconException.kind, ReconException.status, fn.COUNT(ReconException.id)).where(
            ReconException.statement == imp.id).group_by(ReconException.kind, ReconException.status).tuples():
        exceptions.setdefault(kind, {"OPEN": 0, "RESOLVED": 0})[status] = count
    return {"id": imp.id, "filename": imp.filename, "uploaded_by": imp.uploaded_by, "period": imp.period,
            "status": imp.status, "created_at": imp.created_at, "lines": imp.lines, "matched": imp.matched,
            "exceptions": imp.exceptions, "lines_by_match": by_match, "exceptions_by_kind": exceptions,
            "open_exceptions": sum(e["OPEN"] for e in exceptions.values()), **progress(imp)}


def run_row(imp: StatementImport) -> dict:
    """A run as the list of runs shows it: its own counts, no per-run aggregates."""
    return {"id": imp.id, "filename": imp.filename, "uploaded_by": imp.uploaded_by, "period": imp.period,
            "status": imp.status, "created_at": imp.created_at, "lines": imp.lines, "matched": imp.matched,
            "exceptions": imp.exceptions, **progress(imp)}


def progress(imp: StatementImport) -> dict:
    """A run's progress: a background import (QUEUED, IMPORTING) counts its lines as its chunks commit."""
    total = imp.lines_total or imp.lines
    done = total if imp.status == "DONE" else imp.lines_done
    return {"lines_total": total, "lines_done": done, "error": imp.error or None,
            "progress": round(done / total, 4) if total else 1.0}
