"""The secret callback token and the URLs Daraja calls back on."""
from __future__ import annotations

import hmac
import secrets

import peewee

from shared.db import write_tx
from shared.models import Setting

SETTING_KEY = "mpesa_callback_token"


def callback_token(configured: str) -> str:
    """The configured token, or in the local profile one random token kept with the database."""
    if configured:
        return configured
    row = Setting.get_or_none(Setting.key == SETTING_KEY)
    if row:
        return row.value
    try:
        with write_tx():
            Setting.create(key=SETTING_KEY, value=secrets.token_urlsafe(24))
    except peewee.IntegrityError:
        pass  # another process made it first
    return Setting.get(Setting.key == SETTING_KEY).value


def token_matches(given: str, expected: str) -> bool:
    """Constant-time compare, so the token cannot be guessed byte by byte."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def stk_callback_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/mpesa/stk/callback/{token}"
