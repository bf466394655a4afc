"""GET /bench/hello: the benchmarks' floor, registered only when LIPA_BENCH_ENDPOINTS=1.

It answers through the same server, worker count, Flask app and request hooks as every real route, but
touches no database, so a benchmark can divide a real route's rate by it in the same run. Production
never sets the flag, so the route does not exist there (404).
"""
from __future__ import annotations

from flask import Blueprint, make_response

bp = Blueprint("bench", __name__, url_prefix="/bench")  # gateway.http.errors opens no database connection for it


@bp.route("/hello", methods=["GET", "POST"])
def hello():
    """POST too, so a form post of the same size as a USSD hop can be compared like for like."""
    response = make_response("hello", 200)
    response.mimetype = "text/plain"
    return response
