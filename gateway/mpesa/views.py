"""Daraja's callbacks. Thin: check the token, store the raw body, answer, then apply in the background."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from shared.errors import InvalidInput

from .. import inbox
from ..web import error_json
from .callbacks import apply_stk_callback, parse_stk_callback
from .urls import token_matches

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
    refused = _refuse_caller(token)
    if refused:
        return refused
    body = request.get_data(cache=False, as_text=False).decode("utf-8", "replace")
    row, _ = inbox.store("daraja.stk", body, remote_addr=request.remote_addr or "")
    try:
        parse_stk_callback(body)
    except InvalidInput as exc:
        with_status = apply_stk_callback(row.id)  # marks it REJECTED, kept for inspection
        log.warning("malformed STK callback %s stored as %s: %s", row.id, with_status, exc.message)
        return error_json(exc.code, exc.message, 400)
    response = jsonify(ACCEPTED)
    tasks = _services().tasks
    response.call_on_close(lambda: tasks.submit(apply_stk_callback, row.id))
    return response
