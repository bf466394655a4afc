"""USSD sessions and language preferences in the database, so any gateway process can answer any hop."""
from __future__ import annotations

import peewee

from shared.db import retry_locked, write_tx
from shared.models import Payment, PhonePreference, UssdSession
from shared.timeutil import utcnow

from .texts import LANGUAGES


def load(session_id: str) -> UssdSession | None:
    """The stored session, if an earlier hop reached this database."""
    return UssdSession.get_or_none(UssdSession.session_id == session_id)


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
         response: str, payment: Payment | None = None) -> None:
    """Remember this hop: its inputs for the next one, its answer for a duplicate of it."""
    fields = {"phone": phone, "service_code": service_code[:32], "inputs": inputs, "last_text": text,
              "last_response": response, "updated_at": utcnow()}
    if payment is not None:
        fields["payment"] = payment
    _upsert(UssdSession, UssdSession.session_id == session_id, {"session_id": session_id}, fields)


def language_for(phone: str) -> str:
    """The phone's language, English until the caller chooses otherwise."""
    pref = PhonePreference.get_or_none(PhonePreference.phone == phone)
    return pref.language if pref and pref.language in LANGUAGES else "en"


@retry_locked
def set_language(phone: str, language: str) -> None:
    """Remember the choice for every later screen, SMS and payment of this phone."""
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}")
    _upsert(PhonePreference, PhonePreference.phone == phone, {"phone": phone},
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
