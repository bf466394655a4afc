"""POST /api/v1/auth/login."""
from __future__ import annotations

from flask import jsonify

from shared.timeutil import iso

from ..backoffice import auth
from .common import bp, json_body


@bp.post("/auth/login")
def login():
    data = json_body(required=("username", "password"))
    token, staff, expires_at = auth.login(str(data["username"]), str(data["password"]))
    return jsonify({"token": token, "role": staff.role, "username": staff.username, "expires_at": iso(expires_at)})
