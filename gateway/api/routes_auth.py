"""POST /api/v1/auth/login, /auth/logout and /auth/password."""
from __future__ import annotations

from flask import jsonify

from shared.errors import InvalidInput
from shared.timeutil import iso

from ..backoffice import auth, sessions
from .common import bp, json_body, principal


@bp.post("/auth/login")
def login():
    data = json_body(required=("username", "password"))
    token, staff, expires_at = auth.login(str(data["username"]), str(data["password"]))
    return jsonify({"token": token, "role": staff.role, "username": staff.username, "expires_at": iso(expires_at)})


@bp.post("/auth/logout")
def logout():
    """The token of this request stops working at once; 204."""
    sessions.logout(principal())
    return "", 204


@bp.post("/auth/password")
def change_password():
    """``{"current", "new"}``: the new password (the staff rule applies); the member's other sessions end."""
    data = json_body(required=("current", "new"))
    if not isinstance(data["current"], str) or not isinstance(data["new"], str):
        raise InvalidInput("current and new must be text.", code="invalid_password")
    ended = sessions.change_password(principal(), data["current"], data["new"])
    return {"changed": True, "sessions_ended": ended}
