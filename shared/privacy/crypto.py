"""Personal data at rest: values sealed with Fernet, and keyed look-up hashes so a phone can still be found.

Why two keys: a sealed value (Fernet: AES-128-CBC + HMAC-SHA256, random IV) cannot be searched for, as the
same phone seals differently each time; the look-up hash (HMAC-SHA256 under a separate key) is the same for
the same phone, so ``WHERE phone_hash = ?`` and a unique index work. Keyed, so whoever has the database
but not the key cannot hash the million Kenyan mobile numbers and read the table back.

Keys (see shared.config): ``LIPA_DATA_KEY`` is a comma list of Fernet keys, the first seals, every one
opens (MultiFernet), which is how data keys are rotated; ``LIPA_LOOKUP_KEY`` keys the hashes. In the local
profile only, missing keys are generated once and kept in the database's Setting table so the demo runs
with no setup; anyone holding that database holds its keys, so this is never done in sandbox or production.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

LOCAL_DATA_KEY = "local.data_key"
LOCAL_LOOKUP_KEY = "local.lookup_key"
MIN_LOOKUP_KEY = 32


class KeysNotSet(RuntimeError):
    """Sealed data was touched before install()/use_keys(): a wiring mistake, never a user error."""


class Unreadable(RuntimeError):
    """A sealed value that none of the data keys opens (a key was dropped from LIPA_DATA_KEY too early)."""


@dataclass(frozen=True)
class Keyring:
    data: MultiFernet  # opens with any key, seals with the first
    current: Fernet  # the first key alone: tells whether a value still needs rotating
    lookup: bytes

    def __repr__(self) -> str:  # never show a key
        return "Keyring(***)"


_keyring: Keyring | None = None


def make_keyring(data_keys, lookup_key: str) -> Keyring:
    """A keyring from key text; ValueError when a data key is not a Fernet key."""
    fernets = [Fernet(key.strip().encode()) for key in data_keys if key.strip()]
    if not fernets:
        raise ValueError("no data key")
    if len(lookup_key) < MIN_LOOKUP_KEY:
        raise ValueError("lookup key too short")
    return Keyring(MultiFernet(fernets), fernets[0], lookup_key.encode())


def use_keys(data_keys, lookup_key: str) -> Keyring:
    """Make these the process's keys (every database connection of the process uses them)."""
    global _keyring
    _keyring = make_keyring(data_keys, lookup_key)
    return _keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise KeysNotSet("personal-data keys are not loaded: call shared.privacy.crypto.install(config) after init_db()")
    return _keyring


def seal(text: str) -> str:
    """The text encrypted with the current data key (different every call)."""
    return keyring().data.encrypt(text.encode()).decode()


def unseal(token: str) -> str:
    try:
        return keyring().data.decrypt(token.encode()).decode()
    except InvalidToken:
        raise Unreadable("a sealed value opens with none of the keys in LIPA_DATA_KEY") from None


def needs_rotation(token: str) -> bool:
    """True when the current (first) key does not open the value, i.e. an older key sealed it."""
    try:
        keyring().current.decrypt(token.encode())
    except InvalidToken:
        return True
    return False


def rotate(token: str) -> str:
    """The same value sealed again with the current key (Unreadable when no key opens it)."""
    try:
        return keyring().data.rotate(token.encode()).decode()
    except InvalidToken:
        raise Unreadable("a sealed value opens with none of the keys in LIPA_DATA_KEY") from None


def lookup_hash(value: str) -> str:
    """HMAC-SHA256 of the value under the look-up key, 64 hex digits: equal values, equal hashes."""
    return hmac.new(keyring().lookup, str(value).encode(), hashlib.sha256).hexdigest()


def new_data_key() -> str:
    return Fernet.generate_key().decode()


def new_lookup_key() -> str:
    return secrets.token_urlsafe(32)


def install(config) -> Keyring:
    """The keys of ``config``; in the local profile a missing key comes from (or is created in) the bound
    database's Setting table. Call after init_db() and before migrate(): migration 9 seals existing rows."""
    data_keys, lookup_key = tuple(config.data_keys), config.lookup_key
    if not (data_keys and lookup_key):
        if not config.is_local:  # load_config refuses this already; kept as a guard for hand-made configs
            raise KeysNotSet("LIPA_DATA_KEY and LIPA_LOOKUP_KEY are required outside the local profile")
        stored = _local_keys()
        data_keys = data_keys or (stored[LOCAL_DATA_KEY],)
        lookup_key = lookup_key or stored[LOCAL_LOOKUP_KEY]
    return use_keys(data_keys, lookup_key)


def _local_keys() -> dict[str, str]:
    """Demo keys kept with the data (local profile only): created once, the same for every process."""
    from ..db import db, schema_tx
    from ..models.operations import Setting

    opened = db.is_closed()
    if opened:
        db.connect()
    try:
        with schema_tx():
            Setting.create_table(safe=True)  # migration 1 creates it too (safe=True): a fresh database has none yet
            for key, make in ((LOCAL_DATA_KEY, new_data_key), (LOCAL_LOOKUP_KEY, new_lookup_key)):
                Setting.insert(key=key, value=make()).on_conflict_ignore().execute()
            rows = Setting.select().where(Setting.key.in_([LOCAL_DATA_KEY, LOCAL_LOOKUP_KEY]))
            return {row.key: row.value for row in rows}
    finally:
        if opened:
            db.close()
