"""The API blueprint and its plumbing: who is calling, rate limits, JSON bodies, cursors, idempotency."""
from __future__ import annotations

import base64
import hashlib
import json

import peewee
from flask import Blueprint, current_app, g, jsonify, request

from shared.db import write_tx
from shared.errors import InvalidInput, LipaError
from shared.models import IdempotencyRecord

from ..backoffice.auth import Principal, Unauthorized, authenticate
from .ratelimit import Limit, RateLimited, hit, refuse_if_over

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PUBLIC = {"api.login", "api.openapi"}
# Per client and route group, shared across processes. Logins are limited by their failures instead
# (api/lockout.py), and so are bearer tokens: BAD_TOKENS per address, then 429 before any token is checked.
BAD_TOKENS = Limit(50, 900)
LIMITS = {
    "read": Limit(3000, 900),  # a desktop's own reads on a busy day fit (README: "Reads the app makes")
    "events": Limit(1200, 900),  # the desktop app long-polls the feed all day
    "write": Limit(120, 900),
}


class UnsupportedMediaType(LipaError):
    http_status = 415
    code = "unsupported_media_type"


def principal() -> Principal:
    return g.principal


def limits_on() -> bool:
    """LIPA_API_RATE_LIMITS=0 turns every API limit off (tests, benchmarks)."""
    return current_app.extensions["lipa"].config.api_rate_limits


@bp.before_request
def _who_and_how_often():
    """Authenticate (except public routes) and count the request against its limit."""
    if request.endpoint in PUBLIC:
        return
    g.principal = _authenticated(request.remote_addr or "?")
    if limits_on():
        group = "events" if request.endpoint == "api.events" else "read" if request.method == "GET" else "write"
        hit(f"{group}:{g.principal.scope}", LIMITS[group])


def _authenticated(address: str) -> Principal:
    """The caller; an address that sent BAD_TOKENS wrong tokens is refused (429) before its next one is
    even looked at, so tokens cannot be guessed at any speed."""
    bucket = f"bad-token:{address}"
    if limits_on():
        refuse_if_over(bucket, BAD_TOKENS)
    try:
        return authenticate(request.headers.get("Authorization"),
                            idle_s=current_app.extensions["lipa"].config.session_idle_s)
    except Unauthorized:
        if limits_on():
            hit(bucket, BAD_TOKENS)
        raise


@bp.after_app_request
def _no_store(response):
    """API answers carry personal data and tokens: no browser or proxy may keep a copy. On the app, so
    answers no route of the blueprint gave (an unknown /api/v1 path, a 405) carry it too."""
    if request.path == bp.url_prefix or request.path.startswith(bp.url_prefix + "/"):
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(RateLimited)
def _rate_limited(exc: RateLimited):
    response = jsonify(exc.to_json())
    response.status_code = 429
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def json_body(required: tuple = (), optional: tuple = ()) -> dict:
    """The request's JSON object with exactly the allowed keys; 415/400 otherwise."""
    if not request.is_json:
        raise UnsupportedMediaType("Send Content-Type: application/json.")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.", code="invalid_json")
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(unknown)}.", code="unknown_field")
    missing = [key for key in required if data.get(key) in (None, "")]
    if missing:
        raise InvalidInput(f"Missing field(s): {', '.join(missing)}.", code="missing_field")
    return data


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id to continue below; a cursor that is not ours is a 400, never a 500."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, value = text.split(":", 1)
        if prefix != "id" or not value.isdigit():
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not valid.", code="invalid_cursor") from None


def page_limit(default: int = 50, maximum: int = 200) -> int:
    raw = request.args.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise InvalidInput(f"limit must be a whole number from 1 to {maximum}.", code="invalid_limit")
    return int(raw)


def idempotent(create):
    """Run create() once per (caller, Idempotency-Key): the same key and body replay the first answer,
    the same key with another body is a 409."""
    key = request.headers.get("Idempotency-Key")
    if not key:
        body, status = create()
        return jsonify(body), status
    if len(key) > 200:
        raise InvalidInput("Idempotency-Key must be at most 200 characters.", code="invalid_idempotency_key")
    scope = principal().scope
    digest = hashlib.sha256(request.get_data()).hexdigest()
    stored = IdempotencyRecord.get_or_none(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
    if stored is None:
        body, status = create()
        try:
            with write_tx():
                stored = IdempotencyRecord.create(scope=scope, key=key, request_hash=digest, status_code=status,
                                                  response_body=json.dumps(body, default=str))
        except peewee.IntegrityError:
            stored = IdempotencyRecord.get(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
    if stored.request_hash != digest:
        raise LipaError("This Idempotency-Key was used with a different body.", code="idempotency_conflict",
                        http_status=409)
    return jsonify(json.loads(stored.response_body)), stored.status_code
