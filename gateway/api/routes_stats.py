"""GET /api/v1/stats: the dashboard numbers for a period."""
from __future__ import annotations

from flask import current_app, jsonify, request

from ..backoffice import stats
from .common import bp, principal


@bp.get("/stats")
def get_stats():
    """Counts, amounts, rates, callback lag, delivery rate and an hourly series (viewer+)."""
    principal().require("viewer")
    since, until = stats.parse_period(request.args)
    config = current_app.extensions["lipa"].config
    return jsonify(stats.summary(since, until, stuck_after_s=config.stuck_after_s))
