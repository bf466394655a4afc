"""Per-request database connections and one JSON error handler for the whole app."""
from __future__ import annotations

import logging

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from shared.db import UNAVAILABLE, close_quietly, db
from shared.errors import LipaError

log = logging.getLogger(__name__)
NO_DB_ENDPOINTS = frozenset({"health.healthz", "bench.hello"})  # bench.hello: the benchmarks' floor
# Connected at their first query instead of before the view: a later hop of a USSD session may need none
# (gateway/ussd/menu.py SessionLanguages), and taking and giving back a pooled connection is a fifth of it.
LAZY_DB_ENDPOINTS = frozenset({"ussd.ussd"})


def error_json(code: str, message: str, status: int):
    """The one error shape every JSON route answers with."""
    return jsonify({"error": {"code": code, "message": message}}), status


def install(app: Flask) -> None:
    """Open a connection per request and render every error as JSON (never a traceback)."""

    @app.before_request
    def _connect():
        endpoint = request.endpoint
        if endpoint in LAZY_DB_ENDPOINTS:
            g.lipa_lazy_db = db.is_closed()  # closed now: whatever the view opens is closed after it
        elif endpoint not in NO_DB_ENDPOINTS:  # the health check reports a failure itself
            g.lipa_opened_db = db.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc):
        opened = g.pop("lipa_opened_db", False) or (g.pop("lipa_lazy_db", False) and not db.is_closed())
        if opened:
            close_quietly()  # even a connection the database dropped: the next request starts afresh
        app.extensions["lipa"].wake_dispatcher()

    @app.errorhandler(LipaError)
    def _lipa_error(exc: LipaError):
        return error_json(exc.code, exc.message, exc.http_status)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:  # refused and logged (issue 7); the route, not the path, which may hold a token
            log.warning("%s %s refused: body larger than %s bytes", request.method, _where(),
                        app.config.get("MAX_CONTENT_LENGTH"))
        return error_json(code, exc.description or exc.name, exc.code or 500)

    def _db_error(exc):
        """The database is away or busy: 503 (providers retry; the API client is told to), never a 500."""
        log.error("database unavailable on %s %s: %s", request.method, _where(), type(exc).__name__)
        return error_json("unavailable", "The service is busy; please retry.", 503)

    for unavailable in UNAVAILABLE:
        app.register_error_handler(unavailable, _db_error)

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unexpected error on %s %s", request.method, _where())
        return error_json("internal_error", "Something went wrong; it has been logged.", 500)


def _where() -> str:
    """The route a request matched ("/mpesa/stk/callback/<token>"), never the raw path: a callback's
    path holds the secret token, a query string may hold a phone."""
    rule = request.url_rule
    return rule.rule if rule is not None else request.path
