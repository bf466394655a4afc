"""The USSD channel: Africa's Talking posts every hop here and must get CON/END back within milliseconds.

Thin: parse the form, let the menu answer, and send the STK push only after the answer has gone out.
Whatever happens, the caller sees a short END, never a 500 or a traceback.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from urllib.parse import unquote_plus

import peewee
from flask import Blueprint, current_app, request
from werkzeug.exceptions import HTTPException

from shared.db import UNAVAILABLE
from shared.errors import InvalidInput, LipaError
from shared.phone import mask_phone, normalize_phone

from ..http.callerguard import AT, protect
from ..payments.service import send_push
from ..texts import ussd as texts
from .menu import Hop, Reply, handle

bp = protect(Blueprint("ussd", __name__), AT)  # under /at/<token> when AT_CALLBACK_TOKEN is set
log = logging.getLogger(__name__)
FAILURE = "END " + texts.t("en", "failure")
SESSION_ID_MAX = 100
FORM_FIELDS_MAX = 100  # AT sends six; werkzeug's own cap is 1,000


@bp.post("/ussd")
def ussd():
    """One hop of a session: answer, then (when it made a payment) push the PIN prompt."""
    try:
        reply = _answer()
    except HTTPException:
        raise  # a request refused before the menu (body too large, unreadable form): see _failed
    except UNAVAILABLE as exc:  # connected at the menu's first query (http.errors.LAZY_DB_ENDPOINTS)
        log.error("USSD hop failed: database unavailable (%s)", type(exc).__name__)
        reply = Reply(FAILURE)
    except Exception:
        log.exception("USSD hop failed for %s", _masked_phone())
        reply = Reply(FAILURE)
    response = _plain(reply.text)
    if reply.push_payment_id is not None:
        _push_after(response, reply.push_payment_id)
    return response


@bp.post("/ussd/events")
def events():
    """End-of-session report: only logged (drop-off analytics), never proof of anything."""
    log.info("USSD session %s ended %s after %s hops for %s", _field("sessionId")[:SESSION_ID_MAX],
             _field("status")[:32] or "-", _field("hopsCount")[:8] or "?", _masked_phone())
    return _plain("OK")


def _answer() -> Reply:
    """Check the callback's fields and let the menu answer the hop."""
    form = _form()
    session_id = _field("sessionId", form)
    if not session_id or len(session_id) > SESSION_ID_MAX:
        log.warning("USSD hop without a usable sessionId refused")
        return Reply(FAILURE)
    try:
        phone = normalize_phone(_field("phoneNumber", form))
    except InvalidInput:
        log.warning("USSD hop from an invalid phone %s refused", _masked_phone())
        return Reply(texts.message("en", "bad_phone"))
    hop = Hop(session_id=session_id, phone=phone, text=_field("text", form),
              service_code=_field("serviceCode", form)[:32])
    return handle(hop, current_app.extensions["lipa"].ussd_languages)


def _form():
    """The hop's fields. Africa's Talking posts a small urlencoded form: parsed straight from the body (see
    _urlencoded), about 15 µs a hop less than werkzeug's form parser (measured in one process); the first
    value of a repeated field wins, as with request.form. Another content type goes through request.form; more
    fields than any hop has is no hop (answered with the short END, like a hop without a sessionId)."""
    if request.mimetype == "application/x-www-form-urlencoded":
        return _urlencoded(request.get_data(as_text=True))
    return request.form


def _urlencoded(body: str) -> dict[str, str]:
    """``parse_qsl(body, keep_blank_values=True)`` with its first value per name, decoding only the parts that
    hold an escape: of a hop's ten names and values, only the phone, code and text do (``%2B``, ``%2A``)."""
    pairs = body.split("&")
    if len(pairs) > FORM_FIELDS_MAX:
        return {}
    fields: dict[str, str] = {}
    for pair in pairs:
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in name or "+" in name:
            name = _decoded(name)
        if "%" in value or "+" in value:
            value = _decoded(value)
        fields.setdefault(name, value)
    return fields


# The escaped parts repeat from hop to hop (the service code always, the phone for a whole session), so
# their decoding is remembered: a bounded cache of a pure function, of short parts only (a long text is
# one session's, and 4,096 of them would hold megabytes).
_unquote = lru_cache(maxsize=4096)(unquote_plus)
_REMEMBERED_MAX = 64


def _decoded(part: str) -> str:
    return _unquote(part) if len(part) <= _REMEMBERED_MAX else unquote_plus(part)


def _field(name: str, form=None) -> str:
    """A form field as text; NUL bytes dropped (PostgreSQL refuses them in text)."""
    value = (request.form if form is None else form).get(name)
    return str(value).replace("\x00", "") if value else ""


def _masked_phone() -> str:
    """The caller's number as logs may show it, whatever form it arrived in."""
    try:
        raw = _field("phoneNumber")
    except HTTPException:
        return "-"
    try:
        return mask_phone(normalize_phone(raw))
    except InvalidInput:  # not a number we know: show its shape only (mask_phone would show 9 of 10 digits)
        return f"{raw[:4]}***{raw[-2:]}" if len(raw) > 8 else "***"


def _plain(body: str):
    """A text/plain 200, built with its type at once (setting ``mimetype`` afterwards rebuilds the header)."""
    return current_app.response_class(body, mimetype="text/plain")


def _push_after(response, payment_id: int) -> None:
    """The STK push goes out once the END has reached the caller, off the request thread."""
    services = current_app.extensions["lipa"]
    response.call_on_close(lambda: services.tasks.submit(
        send_push, payment_id, daraja=services.daraja, callback_url=services.stk_callback_url))


def _failed(exc):
    """Errors outside the view (database down, body too large) still answer the way AT expects: 200 and a
    short END (AT shows the caller its own error page for any other status). A refused request (4xx: body
    too large, unreadable form) is a WARNING naming the status it would have had; never a JSON page."""
    if isinstance(exc, HTTPException) and (exc.code or 500) < 500:
        log.warning("USSD request to %s refused (%s %s)", request.path, exc.code, exc.name)
    else:
        log.error("USSD request failed before the menu: %s", type(exc).__name__)
    return _plain("OK") if request.endpoint == "ussd.events" else _plain(FAILURE)


for _error in (Exception, HTTPException, LipaError, peewee.OperationalError):
    bp.register_error_handler(_error, _failed)
