"""Cost-abuse protection: every reply is an SMS we pay for, so a phone gets only a few per window.

Counted from the outbox itself (Notification rows of kind "reply"), so every gateway process sees the
same count; the caller holds the write transaction, and lock_phone() keeps two processes from both
seeing "4" and both replying.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from shared.db import db, is_sqlite
from shared.models import Notification
from shared.timeutil import utcnow

MAX_REPLIES = 5
WINDOW = timedelta(minutes=10)
REPLY_KIND = "reply"


def lock_phone(phone: str) -> None:
    """Serialise replies to one phone until the transaction ends (SQLite's BEGIN IMMEDIATE already does)."""
    if not is_sqlite():
        db.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"lipa.sms.reply:{phone}",))


def replies_sent(phone: str, *, now: datetime | None = None) -> int:
    """Replies queued to this phone within the window, whatever became of them."""
    since = (now or utcnow()) - WINDOW
    return (Notification.select()
            .where(Notification.kind == REPLY_KIND, Notification.recipient_hash == phone,
                   Notification.created_at >= since)
            .count())


def over_limit(phone: str, *, now: datetime | None = None) -> bool:
    """True when one more reply would exceed MAX_REPLIES in WINDOW."""
    return replies_sent(phone, now=now) >= MAX_REPLIES
