"""Daraja's asynchronous Results (reversal, B2C, status) and queue timeouts. Thin, like the STK callback:
check the token, store the raw body, answer, then apply in the background."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from shared.errors import InvalidInput

from ..ingest import inbox
from ..refunds.results import RESULT_SOURCE, TIMEOUT_SOURCE, apply_result, apply_timeout, dedupe_key, parse_result
from ..http.callerguard import MPESA, protect
from ..http.errors import error_json
from .views import ACCEPTED

bp_results = protect(Blueprint("mpesa_results", __name__, url_prefix="/mpesa"), MPESA)
log = logging.getLogger(__name__)


@bp_results.post("/result/<token>")
def result(token: str):
    return _receive(token, timeout=False)


@bp_results.post("/timeout/<token>")
def queue_timeout(token: str):
    return _receive(token, timeout=True)


def _receive(token: str, *, timeout: bool):
    """Stored first (a malformed body too, marked REJECTED), then 200, then applied idempotently."""
    body = request.get_data(cache=False, as_text=False).decode("utf-8", "replace")
    source, applier = (TIMEOUT_SOURCE, apply_timeout) if timeout else (RESULT_SOURCE, apply_result)
    remote = request.remote_addr or ""
    try:
        parsed = parse_result(body, timeout=timeout)
    except InvalidInput as exc:
        row, _ = inbox.store(source, body, remote_addr=remote)
        applier(row.id)  # marks it REJECTED, kept for inspection
        log.warning("malformed Daraja %s %s stored: %s", source, row.id, exc.message)
        return error_json(exc.code, exc.message, 400)
    row, _ = inbox.store(source, body, dedupe_key=dedupe_key(parsed, timeout=timeout), remote_addr=remote)
    response = jsonify(ACCEPTED)
    tasks = current_app.extensions["lipa"].tasks
    response.call_on_close(lambda: tasks.submit(applier, row.id))
    return response
