"""GET /healthz for load balancers: 200 when the database answers, 503 when it does not."""
from __future__ import annotations

import logging

import peewee
from flask import Blueprint, g, jsonify

from shared.db import db

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    try:
        g.lipa_opened_db = db.connect(reuse_if_open=True)
        db.execute_sql("SELECT 1")
    except (peewee.PeeweeException, OSError) as exc:
        log.error("health check: database unreachable (%s)", type(exc).__name__)
        return jsonify({"status": "unavailable", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "ok"})
