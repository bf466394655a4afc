"""Daraja's callbacks. Thin: the caller is checked first (gateway/http/callerguard.py), then the raw body
is stored and applied in one transaction, then answered."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from shared.errors import InvalidInput

from ..ingest import inbox
from ..http.callerguard import MPESA, protect
from ..http.errors import error_json
from . import late_success
from .callbacks import apply_parsed, apply_stk_callback, parse_stk_callback

bp = protect(Blueprint("mpesa", __name__, url_prefix="/mpesa"), MPESA)
log = logging.getLogger(__name__)
ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}


def _services():
    return current_app.extensions["lipa"]


@bp.post("/stk/callback/<token>")
def stk_callback(token: str):
    """Store and apply in one write transaction, then answer: a callback costs one commit before its 200."""
    body = request.get_data(cache=False, as_text=False).decode("utf-8", "replace")
    remote = request.remote_addr or ""
    try:
        result = parse_stk_callback(body)
    except InvalidInput as exc:
        return _malformed(body, remote, exc)
    row, status = inbox.store_and_apply("daraja.stk", body, lambda row: apply_parsed(row, result), remote_addr=remote)
    response = jsonify(ACCEPTED)
    services = _services()
    if status is None:  # stored, but applying failed (logged): once more off the request, then process-inbox
        response.call_on_close(lambda: services.tasks.submit(apply_stk_callback, row.id))
    elif status == "FLAGGED" and (late := late_success.pending_for_inbox(row.id)) is not None:
        # a late success held to verify: ask M-Pesa off the request (expire-pending retries)
        response.call_on_close(lambda: services.tasks.submit(late_success.verify_soon, late.id,
                                                              daraja=services.daraja))
    return response


def _malformed(body: str, remote: str, exc: InvalidInput):
    """Kept for inspection as REJECTED (never applied) and answered 400."""

    def reject(row) -> str:
        inbox.mark(row, "REJECTED", exc.message)
        return "REJECTED"

    row, _ = inbox.store_and_apply("daraja.stk", body, reject, remote_addr=remote)
    log.warning("malformed STK callback %s stored as REJECTED: %s", row.id, exc.message)
    return error_json(exc.code, exc.message, 400)
