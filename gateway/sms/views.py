"""Africa's Talking's SMS callbacks. Thin: store the raw form, answer 200 fast, apply in the background.

AT retries every minute until it gets a 200, so a repeated message is answered 200 and not applied
again; a form we cannot use is stored, marked REJECTED and answered 400 with the JSON error.
"""
from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, request

from shared.errors import InvalidInput

from ..ingest import inbox
from ..http.callerguard import AT, protect
from ..http.errors import error_json
from . import commands, delivery

bp = protect(Blueprint("sms", __name__, url_prefix="/sms"), AT)  # under /at/<token> when AT_CALLBACK_TOKEN is set
log = logging.getLogger(__name__)


@bp.post("/inbound")
def inbound():
    """A customer's SMS to the short code; the reply goes out later as its own SMS."""
    body = _form_body()
    fields = commands.form_fields(body)
    at_id = commands.message_id(fields.get("id"))
    row, created = inbox.store(commands.SOURCE, body, dedupe_key=f"at.sms:{at_id}" if at_id else None,
                               remote_addr=request.remote_addr or "")
    try:
        commands.parse_inbound(fields)
    except InvalidInput as exc:
        return _refused(row, created, exc)
    services = current_app.extensions["lipa"]
    return _accepted(created, lambda: services.tasks.submit(
        commands.handle_inbound, row.id, daraja=services.daraja, callback_url=services.stk_callback_url))


@bp.post("/delivery")
def delivery_report():
    """Whether an SMS we sent reached the handset."""
    body = _form_body()
    fields = commands.form_fields(body)
    row, created = inbox.store(delivery.SOURCE, body, dedupe_key=delivery.dedupe_key(fields),
                               remote_addr=request.remote_addr or "")
    try:
        delivery.parse_report(fields)
    except InvalidInput as exc:
        return _refused(row, created, exc)
    tasks = current_app.extensions["lipa"].tasks
    return _accepted(created, lambda: tasks.submit(delivery.apply_delivery, row.id))


def _form_body() -> str:
    """The raw urlencoded body as AT sent it; any other encoding re-encoded, so the inbox can replay it."""
    if request.mimetype == "multipart/form-data":
        return urlencode(list(request.form.items(multi=True)))
    return request.get_data(cache=False).decode("utf-8", "replace")


def _accepted(created: bool, work):
    """200 now; the work runs once the answer has gone out (a repeat was applied the first time)."""
    response = jsonify({"status": "accepted" if created else "duplicate"})
    if created:
        response.call_on_close(work)
    return response


def _refused(row, created: bool, exc: InvalidInput):
    log.warning("%s %s stored as REJECTED: %s", row.source, row.id, exc.message)
    if created:
        inbox.reject(row.id, exc.message)
    return error_json(exc.code, exc.message, 400)
