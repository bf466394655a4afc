"""GET /api/v1/audit: every audit row (admin), filtered, one keyset page at a time."""
from __future__ import annotations

from flask import request

from ..backoffice.audit_query import list_audit, parse_audit_filters
from ..backoffice.serialize import audit_json
from .common import bp, decode_cursor, encode_cursor, page_limit, principal


@bp.get("/audit")
def list_audit_route():
    """Who did what, to what, when and why: staff actions, jobs, alerts, statements, sessions, keys."""
    principal().require("admin")
    filters = parse_audit_filters(request.args)
    rows, next_id = list_audit(filters, before_id=decode_cursor(request.args.get("cursor")), limit=page_limit())
    return {"items": [audit_json(row, reveal=True) for row in rows],
            "next_cursor": encode_cursor(next_id) if next_id else None}
