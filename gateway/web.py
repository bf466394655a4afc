"""Per-request database connections and one JSON error handler for the whole app."""
from __future__ import annotations

import logging

import peewee
from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from shared.db import db
from shared.errors import LipaError

log = logging.getLogger(__name__)


def error_json(code: str, message: str, status: int):
    """The one error shape every JSON route answers with."""
    return jsonify({"error": {"code": code, "message": message}}), status


def install(app: Flask) -> None:
    """Open a connection per request and render every error as JSON (never a traceback)."""

    @app.before_request
    def _connect():
        if request.endpoint != "health.healthz":  # the health check reports a failure itself
            g.lipa_opened_db = db.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc):
        if g.pop("lipa_opened_db", False) and not db.is_closed():
            db.close()
        app.extensions["lipa"].wake_dispatcher()

    @app.errorhandler(LipaError)
    def _lipa_error(exc: LipaError):
        return error_json(exc.code, exc.message, exc.http_status)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_json(code, exc.description or exc.name, exc.code or 500)

    @app.errorhandler(peewee.OperationalError)
    def _db_error(exc):
        log.error("database unavailable on %s %s: %s", request.method, request.path, type(exc).__name__)
        return error_json("unavailable", "The service is busy; please retry.", 503)

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_json("internal_error", "Something went wrong; it has been logged.", 500)
