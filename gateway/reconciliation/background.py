"""Large statements import in the background, in chunks, with progress anyone can read and a lease.

Why: a 100,000-line statement reconciled in one transaction holds the database's write lock for seconds
(every USSD confirm and callback waits behind it on SQLite) and leaves the uploader's request, and the
desktop app, waiting with no progress. Above ``BACKGROUND_LINES`` the upload is stored (sealed) and answered
at once (202) with a QUEUED run; a task then reconciles ``CHUNK`` new lines per transaction, recording
``lines_done`` after each, and closes the run (duplicates, payments the statement lacks, counts, audit) in a
last one. Every chunk is matched against the same view of the period's payments, so the result is the one a
single transaction would have given. A process that dies mid-way leaves its lease to expire; the
``reconcile`` job resumes the run from the lines already written. A run that fails says why (FAILED) and is
never resumed on its own. Staff may cancel a run while it is QUEUED or IMPORTING (CANCELLED): the importer
checks between chunks, inside each chunk's transaction, so it stops after the chunk in hand and the lines of
committed chunks stay matched; the closing step (payments the statement lacks, duplicates) never runs.
Uploading the same file again resumes it. Knows nothing of Flask.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from peewee import chunked

from shared.db import locked, retry_locked, write_tx
from shared.errors import InvalidInput, NotAllowed, NotFound
from shared.models import AuditLog, StatementImport, StatementLine, StatementUpload
from shared.timeutil import utcnow

from . import service, statement

log = logging.getLogger(__name__)
BACKGROUND_LINES = 2000  # larger statements import in the background
CHUNK = 5000  # new lines per transaction
LEASE_S = 120  # a run not renewed for this long is resumed by another process
QUEUED, IMPORTING, DONE, FAILED, CANCELLED = "QUEUED", "IMPORTING", "DONE", "FAILED", "CANCELLED"
RUNNING = (QUEUED, IMPORTING)


class Cancelled(Exception):
    """Staff cancelled the run: the importer stops before its next chunk."""


def upload(data: bytes, *, filename: str = "", uploaded_by: str = "", config=None) -> tuple[StatementImport, bool]:
    """(the run, whether it continues in the background): up to BACKGROUND_LINES lines are reconciled now,
    in one transaction; a larger statement is queued. The same bytes again return the first run."""
    digest = hashlib.sha256(data).hexdigest()
    existing = service.earlier_import(digest)
    if existing is not None and existing.status == CANCELLED:
        return _requeue(existing.id, data), True
    if existing is not None:
        return existing, existing.status in RUNNING
    parsed = service.parse_statement(data)  # a file we cannot read is refused before anything is kept
    if len(parsed.lines) <= BACKGROUND_LINES:
        return service.import_parsed(parsed, digest, filename=filename, uploaded_by=uploaded_by, config=config), False
    imp = queue_import(data, parsed, digest, filename=filename, uploaded_by=uploaded_by)
    return imp, imp.status in RUNNING


def _requeue(import_id: int, data: bytes) -> StatementImport:
    """A cancelled run uploaded again: queued once more with its file; it resumes after the lines it kept."""
    with write_tx():
        StatementImport.update(status=QUEUED, error="").where(StatementImport.id == import_id).execute()
        if not StatementUpload.select().where(StatementUpload.statement == import_id).exists():
            StatementUpload.create(statement=import_id, body=statement.decode(data))
    return StatementImport.get_by_id(import_id)


def cancel(import_id: int, *, staff: str) -> StatementImport:
    """Stop a QUEUED or IMPORTING run (audited); a run that has ended is a 409 ``not_running``. Lines matched in
    committed chunks stay; the kept file goes (upload it again to resume)."""
    with write_tx():
        try:
            imp = locked(StatementImport, import_id)  # a chunk or the closing step in hand finishes first
        except StatementImport.DoesNotExist:
            raise NotFound(f"No reconciliation run {import_id}.", code="run_not_found") from None
        if imp.status not in RUNNING:
            raise NotAllowed(f"Run #{import_id} is {imp.status.lower()}: only a queued or importing run can be "
                             "cancelled.", code="not_running")
        StatementImport.update(status=CANCELLED, lease_until=None).where(StatementImport.id == import_id).execute()
        StatementUpload.delete().where(StatementUpload.statement == import_id).execute()
        AuditLog.create(actor=staff, action="statement_import_cancel", target_type="statement",
                        target_id=str(import_id), reason="",
                        details={"lines_done": imp.lines_done, "lines_total": imp.lines_total})
    log.info("statement %s cancelled by %s after %d of %d lines", import_id, staff, imp.lines_done, imp.lines_total)
    return StatementImport.get_by_id(import_id)


def queue_import(data: bytes, parsed: statement.Statement, digest: str, *, filename: str,
                 uploaded_by: str) -> StatementImport:
    """Keep the file and a QUEUED run (the same bytes again return the first run)."""
    with write_tx():
        existing = service.earlier_import(digest)
        if existing is not None:
            return existing
        imp = StatementImport.create(sha256=digest, filename=(filename or "")[:255], status=QUEUED,
                                     uploaded_by=(uploaded_by or "")[:64], period=parsed.period_text()[:100],
                                     lines_total=len(parsed.lines))
        StatementUpload.create(statement=imp, body=statement.decode(data))
    log.info("statement %s queued for a background import (%d lines)", imp.id, imp.lines_total)
    return imp


def run_import(import_id: int, *, config=None) -> str | None:
    """Reconcile a queued (or abandoned) run to the end; its final status, or None when another process holds
    it or it is already finished."""
    imp = _claim(import_id)
    if imp is None:
        return None
    try:
        _reconcile_in_chunks(imp, config)
    except Cancelled:
        log.info("background import of statement %s stopped: cancelled", import_id)
        return CANCELLED
    except Exception as exc:  # noqa: BLE001 - recorded on the run and logged; never resumed on its own
        log.exception("background import of statement %s failed", import_id)
        _fail(import_id, f"{type(exc).__name__}: {exc}")
        return FAILED
    return DONE


def resume_abandoned(*, config=None) -> int:
    """Runs whose process died (lease expired) or that were never started: the reconcile job's first step."""
    stale = (StatementImport.select(StatementImport.id)
             .where((StatementImport.status == QUEUED) | ((StatementImport.status == IMPORTING)
                                                           & (StatementImport.lease_until < utcnow())))
             .order_by(StatementImport.id))
    return sum(1 for row in list(stale) if run_import(row.id, config=config) is not None)


@retry_locked
def _claim(import_id: int) -> StatementImport | None:
    with write_tx():
        now = utcnow()
        taken = (StatementImport.update(status=IMPORTING, lease_until=now + timedelta(seconds=LEASE_S))
                 .where(StatementImport.id == import_id,
                        (StatementImport.status == QUEUED)
                        | ((StatementImport.status == IMPORTING) & (StatementImport.lease_until < now)))
                 .execute())
    return StatementImport.get_by_id(import_id) if taken else None


def _reconcile_in_chunks(imp: StatementImport, config) -> None:
    upload = StatementUpload.get(StatementUpload.statement == imp)
    try:
        parsed = statement.parse(upload.body)
    except statement.StatementError as exc:
        raise InvalidInput(f"The statement cannot be read. {exc}", code="invalid_statement") from None
    fresh, repeats, skipped = service.split(imp.id, parsed)
    written = {r for (r,) in StatementLine.select(StatementLine.receipt).where(StatementLine.statement == imp).tuples()}
    todo = [line for line in fresh if line.receipt not in written]
    by_receipt, index = service.load_payments(fresh, parsed.period())
    settled = sum(_chunk(imp.id, lines, by_receipt, index, config) for lines in chunked(todo, CHUNK))
    _close(imp.id, parsed.period(), repeats, skipped, config, settled)


@retry_locked
def _chunk(import_id: int, lines: list, by_receipt: dict, index, config) -> int:
    """One chunk in one transaction, its progress recorded and the lease renewed; payments settled. A run
    cancelled meanwhile raises Cancelled before anything is written (the check shares the chunk's lock)."""
    with write_tx():
        imp = _running(import_id)
        run = service.Run(imp, config)
        run.match(lines, by_receipt, index)
        run.save_counts()
        StatementImport.update(lines_done=StatementImport.lines_done + len(lines),
                               lease_until=utcnow() + timedelta(seconds=LEASE_S)).where(
            StatementImport.id == import_id).execute()
    return run.settled


def _running(import_id: int) -> StatementImport:
    """The run, locked for this chunk's transaction (on PostgreSQL a cancel waits for it, and it for a cancel
    in hand); Cancelled when staff cancelled it meanwhile."""
    imp = locked(StatementImport, import_id)
    if imp.status != IMPORTING:
        raise Cancelled(import_id)
    return imp


@retry_locked
def _close(import_id: int, period, repeats: list, skipped: int, config, settled: int) -> None:
    with write_tx():
        imp = _running(import_id)
        run = service.Run(imp, config)
        run.settled = settled  # for the audit row: what the chunks settled
        run.close(period, repeats, skipped)
        StatementImport.update(status=DONE, lines_done=imp.lines_total, lease_until=None).where(
            StatementImport.id == import_id).execute()
        StatementUpload.delete().where(StatementUpload.statement == import_id).execute()


def _fail(import_id: int, why: str) -> None:
    with write_tx():
        StatementImport.update(status=FAILED, error=why[:255], lease_until=None).where(
            StatementImport.id == import_id, StatementImport.status == IMPORTING).execute()

