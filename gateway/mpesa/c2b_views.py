"""Daraja's C2B calls. Thin: check the caller, then decide (validation) or store, answer, apply (confirmation)."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from shared.errors import InvalidInput

from ..ingest import inbox
from ..http.callerguard import MPESA, protect
from ..http.errors import error_json
from .c2b import CONFIRMED, SOURCE, apply_c2b, decide_validation, parse_c2b

bp_c2b = protect(Blueprint("c2b", __name__, url_prefix="/mpesa/c2b"), MPESA)
log = logging.getLogger(__name__)


@bp_c2b.post("/validation/<token>")
def validation(token: str):
    """Always a 200 with Daraja's JSON (a malformed body is rejected with C2B00016): nothing is stored."""
    return jsonify(decide_validation(request.get_data(cache=False)))


@bp_c2b.post("/confirmation/<token>")
def confirmation(token: str):
    """Inbox first (keyed by TransID, so a repeat is one row), answer, then apply in the background."""
    body = request.get_data(cache=False, as_text=False).decode("utf-8", "replace")
    remote = request.remote_addr or ""
    try:
        trans_id = parse_c2b(body).trans_id
    except InvalidInput as exc:
        row, _ = inbox.store(SOURCE, body, remote_addr=remote)
        apply_c2b(row.id)  # marks it REJECTED, kept for inspection
        log.warning("malformed C2B confirmation %s stored as REJECTED: %s", row.id, exc.message)
        return error_json(exc.code, exc.message, 400)
    row, created = inbox.store(SOURCE, body, dedupe_key=f"c2b:{trans_id}", remote_addr=remote)
    response = jsonify(CONFIRMED)
    if created or row.status == "RECEIVED":  # a repeat of one never applied: apply it now
        tasks = current_app.extensions["lipa"].tasks
        response.call_on_close(lambda: tasks.submit(apply_c2b, row.id))
    return response
