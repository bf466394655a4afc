"""The M-Pesa channel's one blueprint: every call Daraja makes to us, under /mpesa/.

Thin: the caller is checked first (gateway/http/callerguard.py, once for the whole blueprint), then the
raw body is stored in the inbox and answered, then applied after the answer (STK callbacks in batches,
gateway/mpesa/batches.py; C2B confirmations and async results one by one, in the background). A malformed
body is stored too, marked REJECTED for inspection, and answered 400."""
from __future__ import annotations

import json
import logging

from flask import Blueprint, current_app, jsonify, request

from shared.errors import InvalidInput

from ..http.callerguard import MPESA, protect
from ..http.errors import error_json
from ..ingest import inbox
from ..refunds.results import RESULT_SOURCE, TIMEOUT_SOURCE, apply_result, apply_timeout, dedupe_key, parse_result
from .batches import SOURCE as STK_SOURCE
from .c2b import CONFIRMED, apply_c2b, decide_validation, parse_c2b
from .c2b import SOURCE as C2B_SOURCE
from .callbacks import apply_stk_callback, check_stk_callback

bp = protect(Blueprint("mpesa", __name__, url_prefix="/mpesa"), MPESA)
log = logging.getLogger(__name__)
ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}
_ACCEPTED_JSON = json.dumps(ACCEPTED, separators=(",", ":")) + "\n"  # what jsonify(ACCEPTED) gives, made once


def _services():
    return current_app.extensions["lipa"]


def _body() -> str:
    return request.get_data(cache=False, as_text=False).decode("utf-8", "replace")


# --- STK push results ---------------------------------------------------------------------------------

@bp.post("/stk/callback/<token>")
def stk_callback(token: str):
    """Store (one insert, committed), answer, then apply in batches off the request (mpesa.batches)."""
    body, remote = _body(), request.remote_addr or ""
    try:
        check_stk_callback(body)
    except InvalidInput as exc:
        return _malformed(STK_SOURCE, apply_stk_callback, body, remote, exc)
    inbox.store(STK_SOURCE, body, remote_addr=remote)
    response = current_app.response_class(_ACCEPTED_JSON, mimetype="application/json")
    response.call_on_close(_services().callbacks.kick)
    return response


# --- C2B: money paid to the till or paybill without a push ---------------------------------------------

@bp.post("/c2b/validation/<token>")
def c2b_validation(token: str):
    """Always a 200 with Daraja's JSON (a malformed body is rejected with C2B00016): nothing is stored."""
    return jsonify(decide_validation(request.get_data(cache=False)))


@bp.post("/c2b/confirmation/<token>")
def c2b_confirmation(token: str):
    """Inbox first (keyed by TransID, so a repeat is one row), answer, then apply in the background."""
    body, remote = _body(), request.remote_addr or ""
    try:
        trans_id = parse_c2b(body).trans_id
    except InvalidInput as exc:
        return _malformed(C2B_SOURCE, apply_c2b, body, remote, exc)
    row, created = inbox.store(C2B_SOURCE, body, dedupe_key=f"c2b:{trans_id}", remote_addr=remote)
    response = jsonify(CONFIRMED)
    if created or row.status == "RECEIVED":  # a repeat of one never applied: apply it now
        tasks = _services().tasks
        response.call_on_close(lambda: tasks.submit(apply_c2b, row.id))
    return response


# --- Asynchronous results (reversal, B2C, status) and queue timeouts ------------------------------------

@bp.post("/result/<token>")
def result(token: str):
    return _receive_result(timeout=False)


@bp.post("/timeout/<token>")
def queue_timeout(token: str):
    return _receive_result(timeout=True)


def _receive_result(*, timeout: bool):
    """Stored first, then 200, then applied idempotently in the background."""
    body, remote = _body(), request.remote_addr or ""
    source, applier = (TIMEOUT_SOURCE, apply_timeout) if timeout else (RESULT_SOURCE, apply_result)
    try:
        parsed = parse_result(body, timeout=timeout)
    except InvalidInput as exc:
        return _malformed(source, applier, body, remote, exc)
    row, _ = inbox.store(source, body, dedupe_key=dedupe_key(parsed, timeout=timeout), remote_addr=remote)
    response = jsonify(ACCEPTED)
    tasks = _services().tasks
    response.call_on_close(lambda: tasks.submit(applier, row.id))
    return response


def _malformed(source: str, applier, body: str, remote: str, exc: InvalidInput):
    """Stored with no dedupe key, then given to its applier at once, which marks it REJECTED (kept for
    inspection); answered 400."""
    row, _ = inbox.store(source, body, remote_addr=remote)
    applier(row.id)
    log.warning("malformed Daraja %s %s stored as REJECTED: %s", source, row.id, exc.message)
    return error_json(exc.code, exc.message, 400)
