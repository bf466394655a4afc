"""A phone's preferences, the one home of "which language does this customer read" and "did they say STOP".

Every channel asks here: the USSD menu (its screens), the SMS commands (their replies), the notifier (the
status SMS) and the outbox (opt-out). Stored per phone (sealed, found by its look-up hash) so a choice made
on USSD holds for SMS too, on every gateway process."""
from __future__ import annotations

import peewee

from shared.db import retry_locked, write_tx
from shared.db.prepared import Prepared
from shared.models import PhonePreference
from shared.timeutil import utcnow

from ..texts.ussd import LANGUAGES

_PREFERENCE = Prepared(lambda p: PhonePreference.select(PhonePreference.language, PhonePreference.notifications)
                       .where(PhonePreference.phone_hash == p[0]), PhonePreference.phone_hash)


def preference(phone: str) -> PhonePreference | None:
    """The phone's language and opt-out (only those columns), or None."""
    return _PREFERENCE.first(phone)


def language_for(phone: str, default: str | None = None) -> str:
    """The phone's chosen language; else ``default`` (the payment's own), else English."""
    return language_of(preference(phone), default)


def language_of(pref: PhonePreference | None, default: str | None = None) -> str:
    """language_for() of a preferences row already read."""
    if pref and pref.language in LANGUAGES:
        return pref.language
    return default if default in LANGUAGES else "en"


def opted_out(phone: str) -> bool:
    """True after the phone sent STOP (and no START since)."""
    pref = preference(phone)
    return pref is not None and not pref.notifications


@retry_locked
def set_language(phone: str, language: str) -> None:
    """Remember the choice for every later screen, SMS and payment of this phone."""
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}")
    _upsert(phone, {"language": language, "updated_at": utcnow()})


def set_notifications(phone: str, enabled: bool) -> None:
    """STOP (False) or START (True); the caller holds the transaction."""
    _upsert(phone, {"notifications": enabled, "updated_at": utcnow()})


def _upsert(phone: str, fields: dict) -> None:
    """Update the row, or create it; a concurrent create by another process becomes an update."""
    where = PhonePreference.phone_hash == phone
    with write_tx():
        if PhonePreference.update(**fields).where(where).execute():
            return
        try:
            with write_tx():  # a savepoint: a lost race rolls back only the insert
                PhonePreference.create(phone=phone, **fields)
        except peewee.IntegrityError:
            PhonePreference.update(**fields).where(where).execute()
