"""Personal data at rest: values sealed with Fernet, and keyed look-up hashes so a phone can still be found.

Why two keys: a sealed value (Fernet: AES-128-CBC + HMAC-SHA256, random IV) cannot be searched for, as the
same phone seals differently each time; the look-up hash (HMAC-SHA256 under a separate key) is the same for
the same phone, so ``WHERE phone_hash = ?`` and a unique index work. Keyed, so whoever has the database
but not the key cannot hash the million Kenyan mobile numbers and read the table back.

Keys (see shared.config): ``LIPA_DATA_KEY`` is a comma list of Fernet keys, the first seals, every one
opens (MultiFernet), which is how data keys are rotated; ``LIPA_LOOKUP_KEY`` keys the hashes. In the local
profile only, missing keys are generated once and kept in the database's Setting table so the demo runs
with no setup (shared.models.keystore, which reads the database and so lives beside the models: this module
imports no model, and the models can seal without importing themselves back).

Where the keys are held: on the database object they belong to (``bind_keys``), not in a module global.
Every model is declared against the one peewee proxy of shared.db, which is bound per process, so two
apps in one process on two databases read whichever database was bound last; the keys follow that
binding, so the keys in use are always those of the data being read. Binding another database brings
its own keys with it (bench/api_data.py binds a file, then the previous database again), and two apps on
the same database share its keys as they share its rows. Holding them on Services instead would leave
the models (which see the proxy, not the app) with no way to tell which app's keys apply.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import peewee
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..db import db

MIN_LOOKUP_KEY = 32
UNREADABLE = "a sealed value opens with none of the keys in LIPA_DATA_KEY"


class KeysNotSet(RuntimeError):
    """Sealed data was touched before install_keys()/use_keys() on the bound database: a wiring mistake,
    never a user error."""


class Unreadable(RuntimeError):
    """A sealed value that none of the data keys opens (a key was dropped from LIPA_DATA_KEY too early)."""


@dataclass(frozen=True)
class Keyring:
    data: MultiFernet  # opens with any key, seals with the first
    current: Fernet  # the first key alone: tells whether a value still needs rotating
    lookup: bytes

    def __repr__(self) -> str:  # never show a key
        return "Keyring(***)"

    def seal(self, text: str) -> str:
        """The text encrypted with the current data key (different every call)."""
        return self.data.encrypt(text.encode()).decode()

    def unseal(self, token: str) -> str:
        return self._opened(self.data.decrypt, token)

    def needs_rotation(self, token: str) -> bool:
        """True when the current (first) key does not open the value, i.e. an older key sealed it."""
        try:
            self.current.decrypt(token.encode())
        except InvalidToken:
            return True
        return False

    def rotate(self, token: str) -> str:
        """The same value sealed again with the current key (Unreadable when no key opens it)."""
        return self._opened(self.data.rotate, token)

    @staticmethod
    def _opened(step, token: str) -> str:
        try:
            return step(token.encode()).decode()
        except InvalidToken:
            raise Unreadable(UNREADABLE) from None

    def lookup_hash(self, value: str) -> str:
        """HMAC-SHA256 of the value under the look-up key, 64 hex digits: equal values, equal hashes."""
        return hmac.new(self.lookup, str(value).encode(), hashlib.sha256).hexdigest()


KEYRING_ATTR = "lipa_keyring"  # the attribute of a peewee Database that holds its keys


def make_keyring(data_keys, lookup_key: str) -> Keyring:
    """A keyring from key text; ValueError when a data key is not a Fernet key."""
    fernets = [Fernet(key.strip().encode()) for key in data_keys if key.strip()]
    if not fernets:
        raise ValueError("no data key")
    if len(lookup_key) < MIN_LOOKUP_KEY:
        raise ValueError("lookup key too short")
    return Keyring(MultiFernet(fernets), fernets[0], lookup_key.encode())


def _database(database):
    """The Database itself behind a proxy (a proxy refuses attributes of its own)."""
    return database.obj if isinstance(database, peewee.DatabaseProxy) else database


def bind_keys(database, keyring: Keyring) -> Keyring:
    """Make ``keyring`` the keys of ``database`` (a peewee Database, or the proxy: its bound database)."""
    target = _database(database)
    if target is None:
        raise KeysNotSet("no database is bound: call init_db() before installing the personal-data keys")
    setattr(target, KEYRING_ATTR, keyring)
    return keyring


def keys_of(database) -> Keyring:
    """The keys held on ``database`` (KeysNotSet when none were installed on it)."""
    found = getattr(_database(database), KEYRING_ATTR, None)
    if found is None:
        raise KeysNotSet("personal-data keys are not loaded: call shared.models.keystore.install_keys(config)")
    return found


def use_keys(data_keys, lookup_key: str) -> Keyring:
    """Make these the keys of the bound database (every connection to it, from any thread, uses them)."""
    return bind_keys(db, make_keyring(data_keys, lookup_key))


def keyring() -> Keyring:
    """The keys of the bound database: those of the data the models read and write."""
    return keys_of(db)


# The same, with the keys of the bound database: for migrations, rotation, bulk reads and tests.


def seal(text: str) -> str:
    return keyring().seal(text)


def unseal(token: str) -> str:
    return keyring().unseal(token)


def needs_rotation(token: str) -> bool:
    return keyring().needs_rotation(token)


def rotate(token: str) -> str:
    return keyring().rotate(token)


def lookup_hash(value: str) -> str:
    return keyring().lookup_hash(value)


def new_data_key() -> str:
    return Fernet.generate_key().decode()


def new_lookup_key() -> str:
    return secrets.token_urlsafe(32)
