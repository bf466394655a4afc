"""Writing to the outbox. Called inside the caller's transaction, so a change and its messages commit together."""
from __future__ import annotations

import threading

import peewee

from shared.db import db
from shared.models import Notification, PhonePreference

from shared.db.prepared import Prepared

_local = threading.local()
# Run for every message queued (built once: see shared.db.prepared).
_QUEUED_AS = Prepared(lambda p: Notification.select(Notification.id).where(Notification.dedupe_key == p[0]),
                      Notification.dedupe_key)
_PREFERENCE = Prepared(lambda p: PhonePreference.select(PhonePreference.language, PhonePreference.notifications)
                       .where(PhonePreference.phone_hash == p[0]), PhonePreference.phone_hash)


def enqueue(*, channel: str, kind: str, recipient: str, body: str, payment=None, request=None,
            language: str = "en", dedupe_key: str | None = None, respect_opt_out: bool = True) -> Notification:
    """Queue one message; the same dedupe key never queues twice. A phone that sent STOP gets a
    SUPPRESSED row (kept, for the timeline) unless this is a direct reply to its own command."""
    if dedupe_key:
        existing = _QUEUED_AS.first(dedupe_key)
        if existing:
            return Notification.get_by_id(existing.id)
    status = "QUEUED"
    if channel == "sms" and respect_opt_out and opted_out(recipient):
        status = "SUPPRESSED"
    try:
        with db.atomic():  # a savepoint: a duplicate key must not abort the caller's transaction
            row = Notification.create(channel=channel, kind=kind, recipient=recipient, body=body,
                                      payment=payment, request=request, language=language,
                                      dedupe_key=dedupe_key, status=status)
    except peewee.IntegrityError:
        return Notification.get(Notification.dedupe_key == dedupe_key)
    if status == "QUEUED":
        _local.pending = True
    return row


def opted_out(phone: str) -> bool:
    pref = preference(phone)
    return pref is not None and not pref.notifications


def preference(phone: str) -> PhonePreference | None:
    """The phone's language and opt-out (only those columns), or None."""
    return _PREFERENCE.first(phone)


def take_pending() -> bool:
    """True once if this thread queued something since the last call (then the dispatcher is woken)."""
    pending = getattr(_local, "pending", False)
    _local.pending = False
    return pending
