"""GET /api/v1/events: the live feed the desktop app long-polls."""
from __future__ import annotations

from contextlib import nullcontext

from flask import current_app, g, jsonify, request

from shared.errors import InvalidInput

from ..backoffice import feed
from .common import bp, page_limit, principal


@bp.get("/events")
def events():
    """Changes after ``after`` (a cursor, or ``now``), waiting up to ``wait`` seconds for the first one;
    a wait past the long-poll cap is a 429 with Retry-After (gateway/http/longpoll.py)."""
    principal().require("viewer")
    limit = page_limit(default=100, maximum=500)
    wait = _wait(request.args.get("wait"))
    after = request.args.get("after")
    cursor = feed.tail() if after == "now" else feed.decode(after)
    # a wait holds a server thread: capped per token and in all (issue 15); wait=0 is never refused
    gate = current_app.extensions["lipa"].longpolls.slot(principal().scope) if wait > 0 else nullcontext()
    with gate:
        items, cursor = feed.wait_for_items(cursor, limit=limit, wait=wait, release=g.get("lipa_opened_db", False))
    return jsonify({"items": items, "next_cursor": feed.encode(cursor)})


def _wait(raw: str | None) -> float:
    """Seconds to wait, 0 to 25; anything else is a 400."""
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= feed.MAX_WAIT_S:
        raise InvalidInput(f"wait must be a number of seconds from 0 to {feed.MAX_WAIT_S}.", code="invalid_wait")
    return value
