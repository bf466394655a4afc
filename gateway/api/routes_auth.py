"""POST /api/v1/auth/login, /auth/logout and /auth/password."""
from __future__ import annotations

from flask import jsonify, request

from shared.errors import InvalidInput
from shared.timeutil import iso

from ..backoffice import auth, sessions
from . import lockout
from .common import bp, json_body, limits_on, principal


@bp.post("/auth/login")
def login():
    """A token for good credentials; failures count per username and address (api/lockout.py)."""
    data = json_body(required=("username", "password"))
    username, address = str(data["username"]), request.remote_addr or "?"
    if limits_on():
        lockout.check(username, address)
    try:
        token, staff, expires_at = auth.login(username, str(data["password"]))
    except auth.Unauthorized:
        if limits_on():
            lockout.failed(username, address)
        raise
    if limits_on():
        lockout.succeeded(username)
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
    who, address = principal(), request.remote_addr or "?"
    if limits_on():  # a stolen token must not become a way to guess the password
        lockout.check(who.name, address)
    try:
        ended = sessions.change_password(who, data["current"], data["new"])
    except auth.Forbidden as exc:
        if exc.code == "wrong_password" and limits_on():
            lockout.failed(who.name, address)
        raise
    return {"changed": True, "sessions_ended": ended}
