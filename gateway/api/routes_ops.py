"""Operations: alerts, the notification outbox, scheduled jobs and statement reconciliation.

Thin routes over the services: gateway.jobs (runner, registry) and gateway.reconciliation.service.
"""
from __future__ import annotations

from datetime import datetime

from flask import current_app, jsonify, request
from peewee import Case

from shared.db import write_tx
from shared.errors import InvalidInput, NotAllowed, NotFound
from shared.models import Alert, AuditLog, Notification, ReconException, StatementImport
from shared.timeutil import iso

from ..jobs import registry, runner
from ..reconciliation import background as recon_background
from ..reconciliation import service as recon_service
from ..payments import verification
from ..reconciliation import confirm as recon_confirm
from .common import UnsupportedMediaType, bp, json_body, page_limit, principal
from ..backoffice.feed import ranked_page
from ..backoffice.serialize import notification_json, payment_references, reveals

BULK_MAX = 200  # alerts acknowledged in one call
NOTIFICATION_STATUSES = ("QUEUED", "SENDING", "SENT", "DELIVERED", "FAILED", "SUPPRESSED")
NOTIFICATION_CHANNELS = ("sms", "webhook", "email")
MAX_STATEMENT_BYTES = 20 * 1024 * 1024  # also gateway.app.LARGER_BODIES, which lets a body this large through
CSV_TYPES = ("text/csv", "text/plain", "application/csv")
ID = "int(max=9223372036854775807)"  # a row id SQLite can bind


def _args(*allowed: str) -> dict:
    """The query arguments, refusing names this list does not know (a typo must not list everything)."""
    unknown = sorted(set(request.args) - set(allowed) - {"cursor", "limit"})
    if unknown:
        raise InvalidInput(f"Filter {unknown[0]!r} is not a filter of this list.", code="invalid_filter")
    return request.args


def _choice(args, name: str, choices: tuple, *, upper: bool = False) -> str | None:
    value = args.get(name) or None
    if value is not None:
        value = value.upper() if upper else value.lower()
        if value not in choices:
            raise InvalidInput(f"Filter {name!r} must be one of {', '.join(choices)}.", code="invalid_filter")
    return value


def _positive_int(args, name: str) -> int | None:
    raw = args.get(name) or None
    if raw is not None and not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63):
        raise InvalidInput(f"Filter {name!r} must be a positive whole number.", code="invalid_filter")
    return int(raw) if raw else None


def _audit(action: str, target_type: str, target_id, reason: str = "", details=None) -> None:
    """One row per staff action; the caller holds the write transaction."""
    AuditLog.create(actor=principal().actor, action=action, target_type=target_type, target_id=str(target_id),
                    reason=reason[:500], details=details)


def _optional_note() -> str:
    """An optional JSON body {"note"} (an empty body is fine)."""
    if not request.get_data(cache=True):
        return ""
    return str(json_body(optional=("note",)).get("note") or "")


# --- alerts -----------------------------------------------------------------------------------------------

def alert_json(a: Alert, references: dict[int, str] | None = None) -> dict:
    references = references if references is not None else payment_references([a])
    return {"id": a.id, "kind": a.kind, "message": a.message, "payment_id": a.payment_id,
            "payment_reference": references.get(a.payment_id), "acknowledged": bool(a.acknowledged),
            "created_at": iso(a.created_at)}


@bp.get("/alerts")
def list_alerts():
    """Unacknowledged alerts first, newest first within each group (viewer+)."""
    principal().require("viewer")
    args = _args("acknowledged", "kind")
    query = Alert.select()
    acknowledged = _choice(args, "acknowledged", ("true", "false"))
    if acknowledged:
        query = query.where(Alert.acknowledged == (acknowledged == "true"))
    if args.get("kind"):
        query = query.where(Alert.kind == args["kind"][:32])
    rank = Case(None, [(Alert.acknowledged == True, 1)], 0)  # noqa: E712
    rows, cursor = ranked_page(query, rank, Alert.id, args.get("cursor"), page_limit())
    references = payment_references(rows)
    unacknowledged = Alert.select().where(Alert.acknowledged == False).count()  # noqa: E712 - the real count
    return jsonify({"items": [alert_json(a, references) for a in rows], "next_cursor": cursor,
                    "unacknowledged": unacknowledged})


@bp.post("/alerts/acknowledge")
def ack_alerts():
    """Acknowledge several alerts at once (operator+): {"ids": [...], "note"}; each one audited, those already
    acknowledged or unknown left as they are. Answers how many were acknowledged now."""
    principal().require("operator")
    data = json_body(required=("ids",), optional=("note",))
    ids = data["ids"]
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        raise InvalidInput("ids must be a list of alert ids.", code="invalid_ids")
    if len(ids) > BULK_MAX:
        raise InvalidInput(f"At most {BULK_MAX} alerts at once.", code="too_many")
    note = str(data.get("note") or "")
    with write_tx():
        fresh = list(Alert.select(Alert.id, Alert.kind).where(Alert.id.in_(ids), Alert.acknowledged == False))  # noqa: E712
        Alert.update(acknowledged=True).where(Alert.id.in_([a.id for a in fresh])).execute()
        for alert in fresh:
            _audit("alert_ack", "alert", alert.id, note, {"kind": alert.kind, "bulk": True})
    return jsonify({"acknowledged": len(fresh)})


@bp.post(f"/alerts/<{ID}:alert_id>/ack")
def ack_alert(alert_id: int):
    """Mark an alert as seen (operator+); acknowledging twice changes nothing."""
    principal().require("operator")
    note = _optional_note()
    with write_tx():
        alert = Alert.get_or_none(Alert.id == alert_id)
        if alert is None:
            raise NotFound("No such alert.")
        if not alert.acknowledged:
            Alert.update(acknowledged=True).where(Alert.id == alert_id).execute()
            alert.acknowledged = True
            _audit("alert_ack", "alert", alert_id, note, {"kind": alert.kind})
    return jsonify(alert_json(alert))


# --- notifications ----------------------------------------------------------------------------------------

@bp.get("/notifications")
def list_notifications():
    """The outbox, newest first, or failures first with order=failures (viewer+)."""
    principal().require("viewer")
    args = _args("status", "channel", "payment_id", "order")
    query = Notification.select()
    status = _choice(args, "status", NOTIFICATION_STATUSES, upper=True)
    channel = _choice(args, "channel", NOTIFICATION_CHANNELS)
    payment_id = _positive_int(args, "payment_id")
    for field, value in ((Notification.status, status), (Notification.channel, channel),
                         (Notification.payment, payment_id)):
        if value is not None:
            query = query.where(field == value)
    order = _choice(args, "order", ("newest", "failures")) or "newest"
    rank = Case(None, [(Notification.status == "FAILED", 0)], 1) if order == "failures" else None
    rows, cursor = ranked_page(query, rank, Notification.id, args.get("cursor"), page_limit())
    reveal, references = reveals(principal()), payment_references(rows)
    return jsonify({"items": [{**notification_json(n, reveal=reveal), "payment_reference": references.get(n.payment_id)}
                              for n in rows], "next_cursor": cursor})


# --- jobs -------------------------------------------------------------------------------------------------

def _job(name: str):
    """The runner, once the name is known to be a job (404 otherwise)."""
    registry.get(name)
    return runner


def _plain(value):
    """A service's answer as JSON: times as ISO-8601 UTC, rows by their fields."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    if hasattr(value, "__data__"):
        return _plain(value.__data__)
    return value


@bp.get("/jobs")
def list_jobs():
    """Every scheduled job: runs, success rate, last run, paused, interval, next run (viewer+)."""
    principal().require("viewer")
    stats = runner.job_stats(current_app.extensions["lipa"].config)
    return jsonify({"items": _plain(stats), "next_cursor": None})


@bp.post("/jobs/<name>/run")
def run_job(name: str):
    """Run a job now, in this request, even when paused (operator+); 409 while it runs elsewhere."""
    who = principal()
    who.require("operator")
    runner = _job(name)
    with write_tx():
        _audit("job_run", "job", name)
    run = runner.run_job(name, current_app.extensions["lipa"], trigger=f"manual:{who.name}"[:24])
    if run is None:
        raise NotAllowed(f"The job {name} is running right now; try again when it has finished.", code="job_busy")
    return jsonify(_plain(run))


@bp.post("/jobs/<name>/pause")
def pause_job(name: str):
    """Stop a scheduled job from running anywhere until resumed (admin)."""
    return _switch(name, "pause")


@bp.post("/jobs/<name>/resume")
def resume_job(name: str):
    """Let a paused job run on its schedule again (admin)."""
    return _switch(name, "resume")


def _switch(name: str, action: str):
    principal().require("admin")
    runner = _job(name)
    getattr(runner, action)(name)
    with write_tx():
        _audit(f"job_{action}", "job", name)
    return jsonify({"job": name, "paused": action == "pause"})


# --- reconciliation ---------------------------------------------------------------------------------------

def _statement_upload() -> tuple[bytes, str]:
    """The statement's bytes and file name: multipart field ``file`` or a raw CSV body, up to 20 MB."""
    request.max_content_length = MAX_STATEMENT_BYTES  # the app-wide limit is 64 KiB
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise InvalidInput("Send the statement in the form field 'file'.", code="missing_field")
        return upload.read(), (upload.filename or "statement.csv")[:255]
    if request.mimetype not in CSV_TYPES:
        raise UnsupportedMediaType("Send the statement as multipart/form-data or text/csv.")
    return request.get_data(cache=False), request.headers.get("X-Filename", "statement.csv")[:255]


def _flag(raw: str | None) -> bool:
    """A yes/no query parameter: 1/true/yes or 0/false/no (absent is no); anything else is a 400."""
    value = (raw or "0").strip().lower()
    if value not in ("1", "true", "yes", "0", "false", "no"):
        raise InvalidInput("dry_run must be 1 or 0.", code="invalid_parameter")
    return value in ("1", "true", "yes")


@bp.post("/reconciliation/statements")
def upload_statement():
    """Import an M-Pesa statement and reconcile it (operator+); the same file twice is one import.

    ``?dry_run=1`` answers what the import would do (lines, matched, exceptions by kind, unknown money,
    payments it would settle) and writes nothing: upload the same file again without it to commit."""
    who = principal()
    who.require("operator")
    dry_run = _flag(request.args.get("dry_run"))
    data, filename = _statement_upload()
    if not data.strip():
        raise InvalidInput("The statement is empty.", code="empty_statement")
    if dry_run:
        return jsonify(_plain(recon_service.preview_statement(data, filename=filename, uploaded_by=who.actor)))
    lipa = current_app.extensions["lipa"]
    run, later = recon_background.upload(data, filename=filename, uploaded_by=who.actor, config=lipa.config)
    response = jsonify(_plain(recon_service.run_summary(run.id)))
    if not later:
        return response, 201
    # stored and answered at once; reconciled after the answer (the reconcile job resumes it if we die)
    response.call_on_close(lambda: lipa.tasks.submit(recon_background.run_import, run.id, config=lipa.config))
    response.headers["Location"] = f"/api/v1/reconciliation/runs/{run.id}"
    return response, 202


def exception_json(e: ReconException, references: dict[int, str] | None = None) -> dict:
    """An exception, with its payment's reference (what staff talk in) and its line's receipt when known."""
    references = references if references is not None else payment_references([e])
    return {"id": e.id, "kind": e.kind, "payment_id": e.payment_id, "line_id": e.line_id, "details": e.details,
            "payment_reference": references.get(e.payment_id), "status": e.status, "resolved_by": e.resolved_by,
            "resolution_note": e.resolution_note, "resolved_at": iso(e.resolved_at), "created_at": iso(e.created_at)}


@bp.get("/reconciliation/runs")
def list_runs():
    """Past reconciliation runs, newest first, with their counts and progress (viewer+); cursor paging."""
    principal().require("viewer")
    args = _args()
    rows, cursor = ranked_page(StatementImport.select(), None, StatementImport.id, args.get("cursor"), page_limit())
    return jsonify({"items": [_plain(recon_service.run_row(row)) for row in rows], "next_cursor": cursor})


@bp.get(f"/reconciliation/runs/<{ID}:run_id>")
def get_run(run_id: int):
    """A run's summary and a page of its exceptions, open ones first (viewer+)."""
    principal().require("viewer")
    args = _args("status")
    summary = _plain(recon_service.run_summary(run_id))
    query = ReconException.select().where(ReconException.statement == run_id)
    status = _choice(args, "status", ("OPEN", "RESOLVED"), upper=True)
    if status:
        query = query.where(ReconException.status == status)
    rank = Case(None, [(ReconException.status == "OPEN", 0)], 1)
    rows, cursor = ranked_page(query, rank, ReconException.id, args.get("cursor"), page_limit())
    references = payment_references(rows)  # one query for the page, not one per row
    return jsonify({"run": summary, "items": [exception_json(e, references) for e in rows], "next_cursor": cursor})


@bp.post(f"/reconciliation/runs/<{ID}:run_id>/cancel")
def cancel_run(run_id: int):
    """Cancel a background import while it is queued or importing (operator+): it stops before its next chunk,
    the lines already matched stay; a run that has ended is a 409 ``not_running``."""
    who = principal()
    who.require("operator")
    recon_background.cancel(run_id, staff=who.actor)
    return jsonify(_plain(recon_service.run_summary(run_id)))


@bp.post(f"/reconciliation/exceptions/<{ID}:exception_id>/confirm")
def confirm_exception(exception_id: int):
    """Confirm an exception (admin): 202 with the verification of its receipt by Transaction Status;
    money moves only once M-Pesa confirms it."""
    who = principal()
    who.require("admin")
    data = json_body(("reason",), optional=("receipt",))
    v = recon_confirm.confirm_exception(exception_id, staff=who.actor, reason=data["reason"],
                                        receipt=data.get("receipt"))
    verification.submit_verification(current_app.extensions["lipa"], v.id)
    return jsonify({"verification": verification.verification_json(v)}), 202


@bp.post(f"/reconciliation/exceptions/<{ID}:exception_id>/resolve")
def resolve_exception(exception_id: int):
    """Close an exception with a note saying why (operator+); the service writes the audit row."""
    who = principal()
    who.require("operator")
    note = str(json_body(required=("note",))["note"]).strip()
    row = recon_service.resolve_exception(exception_id, staff=who.actor, note=note[:500])
    return jsonify(exception_json(row))
