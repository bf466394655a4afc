"""Daraja's callbacks. Thin: check the token, store the raw body and apply it in one transaction, answer."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from shared.errors import InvalidInput

from ..ingest import inbox
from ..http.errors import error_json
from .callbacks import apply_parsed, apply_stk_callback, parse_stk_callback
from ..providers.daraja.urls import token_matches

bp = Blueprint("mpesa", __name__, url_prefix="/mpesa")
log = logging.getLogger(__name__)
ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}


def _services():
    return current_app.extensions["lipa"]


def _refuse_caller(token: str):
    """404 for a wrong token (as if the URL did not exist), 403 for an address not on the allowlist."""
    services = _services()
    if not token_matches(token, services.callback_token):
        log.warning("callback with a wrong token from %s refused", request.remote_addr)
        return error_json("not_found", "Not found.", 404)
    allowed = services.config.mpesa_allowed_ips
    if allowed and request.remote_addr not in allowed:
        log.warning("callback from %s not on MPESA_ALLOWED_IPS refused", request.remote_addr)
        return error_json("forbidden", "Caller not allowed.", 403)
    return None


@bp.post("/stk/callback/<token>")
def stk_callback(token: str):
    """Store and apply in one write transaction, then answer: a callback costs one commit before its 200."""
    refused = _refuse_caller(token)
    if refused:
        return refused
    body = request.get_data(cache=False, as_text=False).decode("utf-8", "replace")
    remote = request.remote_addr or ""
    try:
        result = parse_stk_callback(body)
    except InvalidInput as exc:
        return _malformed(body, remote, exc)
    row, status = inbox.store_and_apply("daraja.stk", body, lambda row: apply_parsed(row, result), remote_addr=remote)
    response = jsonify(ACCEPTED)
    if status is None:  # stored, but applying failed (logged): once more off the request, then process-inbox
        tasks = _services().tasks
        response.call_on_close(lambda: tasks.submit(apply_stk_callback, row.id))
    return response


def _malformed(body: str, remote: str, exc: InvalidInput):
    """Kept for inspection as REJECTED (never applied) and answered 400."""

    def reject(row) -> str:
        inbox.mark(row, "REJECTED", exc.message)
        return "REJECTED"

    row, _ = inbox.store_and_apply("daraja.stk", body, reject, remote_addr=remote)
    log.warning("malformed STK callback %s stored as REJECTED: %s", row.id, exc.message)
    return error_json(exc.code, exc.message, 400)
