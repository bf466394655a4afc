"""The admin and merchant JSON API under /api/v1: thin routes over Flask-free services."""
from __future__ import annotations


def register(app) -> None:
    """Mount the one blueprint, with the routes of every routes_* module (each adds its own to it)."""
    from . import (  # noqa: F401 - imported for the routes they add to bp
        routes_audit, routes_auth, routes_events, routes_openapi, routes_ops, routes_payments, routes_receipts,
        routes_requests, routes_stats,
    )
    from .common import bp

    if "api" not in app.blueprints:
        app.register_blueprint(bp)
