"""USSD sessions and language preferences in the database, so any gateway process can answer any hop."""
from __future__ import annotations

import peewee

from shared.db import db, is_sqlite, retry_locked, write_tx
from shared.models import Payment, PhonePreference, UssdSession
from shared.timeutil import utcnow

from shared.db.prepared import Prepared
from ..texts.ussd import LANGUAGES

# Every hop runs these (built once: see shared.db.prepared).
US = UssdSession
_LOAD = Prepared(lambda p: US.select(US.id, US.phone, US.inputs, US.last_text, US.last_response)
                 .where(US.session_id == p[0]), US.session_id)
_LANGUAGE = Prepared(lambda p: PhonePreference.select(PhonePreference.language)
                     .where(PhonePreference.phone_hash == p[0]), PhonePreference.phone_hash)
_HOP = (US.inputs, US.last_text, US.last_response, US.service_code, US.updated_at)
_UPDATE = Prepared(lambda p: US.update(dict(zip(_HOP, p[:5], strict=True))).where(US.session_id == p[5]),
                   *_HOP, US.session_id)
_UPDATE_PAID = Prepared(lambda p: US.update({**dict(zip(_HOP, p[:5], strict=True)), US.payment: p[5]})
                        .where(US.session_id == p[6]), *_HOP, US.payment, US.session_id)
_INSERT = Prepared(lambda p: US.insert(dict(zip((*_HOP, US.payment, US.session_id, US.phone, US.created_at), p,
                                               strict=True))),
                   *_HOP, US.payment, US.session_id, US.phone, US.created_at)


def load(session_id: str) -> UssdSession | None:
    """The stored session, if an earlier hop reached this database (the columns a hop needs)."""
    return _LOAD.first(session_id)


def split(text: str) -> list[str]:
    """The inputs of a session nobody stored: Africa's Talking joins them with '*'."""
    return text.split("*") if text else []


def inputs_for(row: UssdSession | None, text: str) -> list[str]:
    """Every input of the session so far; the new one is whatever extends the stored text.

    Kept inputs matter because a caller may type '*' inside one (an account like AB*1).
    """
    if row is None:
        return split(text)
    stored = list(row.inputs or [])
    if row.last_text == "" and not stored and text:
        return [text]  # the hop after the opening one carries exactly one input
    prefix = row.last_text + "*"
    if row.last_text and text.startswith(prefix):
        return stored + [text[len(prefix):]]
    return split(text)


@retry_locked
def save(*, session_id: str, phone: str, service_code: str, inputs: list[str], text: str,
         response: str, payment: Payment | None = None, stored: bool = True) -> None:
    """Remember this hop: its inputs for the next one, its answer for a duplicate of it. ``stored``: an
    earlier hop stored the session (the caller read its row), so one UPDATE does; else one INSERT.

    On PostgreSQL the commit does not wait for the disk (synchronous_commit off, this transaction only:
    3.3 ms less per hop here): a database crash could lose the last second of hops, which only makes a
    caller's next hop read like a fresh one; the payment a hop creates is committed durably by initiate().
    SQLite's WAL with synchronous=NORMAL already commits without waiting for the disk."""
    hop = (inputs, text, response, service_code[:32], utcnow())
    with write_tx():
        if not is_sqlite():
            db.execute_sql("SET LOCAL synchronous_commit = off")
        if stored and _update(hop, payment, session_id):
            return
        try:
            with db.atomic():  # a savepoint: a lost race (a duplicate first hop) rolls back only the insert
                _INSERT.execute(*hop, payment, session_id, phone, hop[-1])
        except peewee.IntegrityError:
            _update(hop, payment, session_id)


def _update(hop: tuple, payment: Payment | None, session_id: str) -> int:
    """The session's phone never changes (a hop from another phone is refused), so it is not rewritten."""
    if payment is None:
        return _UPDATE.execute(*hop, session_id)
    return _UPDATE_PAID.execute(*hop, payment, session_id)


def language_for(phone: str) -> str:
    """The phone's language, English until the caller chooses otherwise."""
    pref = _LANGUAGE.first(phone)
    return pref.language if pref and pref.language in LANGUAGES else "en"


@retry_locked
def set_language(phone: str, language: str) -> None:
    """Remember the choice for every later screen, SMS and payment of this phone."""
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}")
    _upsert(PhonePreference, PhonePreference.phone_hash == phone, {"phone": phone},
            {"language": language, "updated_at": utcnow()})


def _upsert(model, where, key: dict, fields: dict) -> None:
    """Update the row, or create it; a concurrent create by another process becomes an update."""
    with write_tx():
        if model.update(**fields).where(where).execute():
            return
        try:
            with write_tx():  # a savepoint: a lost race rolls back only the insert
                model.create(**key, **fields)
        except peewee.IntegrityError:
            model.update(**fields).where(where).execute()
