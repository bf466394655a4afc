"""Field types for personal data (Kenya's Data Protection Act): sealed at rest, plain in Python.

* ``SealedText`` / ``SealedJSON``: encrypted on the way to the database, decrypted on the way back, so
  ``payment.phone`` is the phone to send an SMS to while the column holds a Fernet token. A sealed column
  cannot be searched (the same phone seals differently every time): comparing one in a query raises
  TypeError naming the look-up field to use instead. Empty text stays empty (nothing personal in it).
* ``LookupHash``: the keyed hash of a plain value, for WHERE clauses and unique indexes. Queries give it
  the PLAIN value and it is hashed on the way to the database: ``Payment.phone_hash == "254712345678"``.
  A value read back is a ``Digest`` and is written or compared as is, never hashed a second time.
* ``KeepsLookups``: models whose look-up hashes follow a sealed field recompute them in save().
  ``Model.update(...)``, ``insert_many`` and raw SQL bypass save(): set or compute the hash there too.
"""
from __future__ import annotations

import json

import peewee as pw

from .crypto import keyring, keys_of


class SealedText(pw.TextField):
    """Text stored encrypted. ``lookup`` names the LookupHash sibling to search by, if there is one."""

    def __init__(self, *args, lookup: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lookup = lookup

    def db_value(self, value):
        if value is None or value == "":
            return value
        return self.keys().seal(self.encode(value))

    def python_value(self, value):
        if value is None or value == "":
            return value
        return self.decode(self.keys().unseal(value))

    def keys(self):
        """The keys of this model's database (shared.privacy.crypto: they are held on the database)."""
        return keys_of(self.model._meta.database)

    def encode(self, value) -> str:
        return str(value)

    def decode(self, text: str):
        return text

    def _refuse(self, *_args, **_kwargs):
        hint = f"compare {self.model.__name__}.{self.lookup}" if self.lookup else "it has no look-up hash"
        raise TypeError(f"{self.model.__name__}.{self.name} is sealed and cannot be searched: {hint}")

    def __eq__(self, rhs):
        if isinstance(rhs, pw.Node):  # peewee's own field-to-field expressions
            return super().__eq__(rhs)
        return self._refuse()

    def __ne__(self, rhs):
        if isinstance(rhs, pw.Node):
            return super().__ne__(rhs)
        return self._refuse()

    in_ = not_in = contains = startswith = endswith = regexp = ilike = _refuse
    __hash__ = pw.TextField.__hash__


class SealedJSON(SealedText):
    """JSON stored encrypted (sorted keys, as JSONText)."""

    def db_value(self, value):
        return None if value is None else self.keys().seal(self.encode(value))

    def python_value(self, value):
        return None if value is None else self.decode(self.keys().unseal(value))

    def encode(self, value) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    def decode(self, text: str):
        return json.loads(text)


class Digest(str):
    """A look-up hash as stored: written back and compared as is, never hashed again."""


def digest_of(value, database=None) -> Digest | None:
    """The look-up hash of a plain value under the keys of ``database`` (default: the bound one); a Digest
    stays itself; empty is None: nothing to look up."""
    if value is None or value == "":
        return None
    if isinstance(value, Digest):
        return value
    return Digest((keyring() if database is None else keys_of(database)).lookup_hash(value))


class LookupHash(pw.CharField):
    """HMAC-SHA256 (hex) of the plain value of ``source``. ``derived``: save() keeps it equal to the hash
    of ``source``; otherwise the code sets it (``Payment.active_phone``: the phone while the payment is
    active, else None) and ``rotate-keys --rehash`` recomputes it from ``source`` where it is set."""

    def __init__(self, source: str, *, derived: bool = True, **kwargs):
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("null", True)
        super().__init__(**kwargs)
        self.source = source
        self.derived = derived

    def db_value(self, value):
        digest = digest_of(value, self.model._meta.database)
        return None if digest is None else str(digest)

    def python_value(self, value):
        return None if value is None else Digest(value)


class KeepsLookups:
    """Mixin for models with LookupHash fields: save() turns each into the Digest of its plain value
    (derived ones from their source), so a stored hash never disagrees with the sealed value."""

    def save(self, *args, **kwargs):
        self.prepare_save()
        return super().save(*args, **kwargs)

    def prepare_save(self) -> None:
        """Each look-up hash from its plain value (also for shared.db.prepared.create's INSERT)."""
        for field in self._meta.fields.values():
            if not isinstance(field, LookupHash):
                continue
            name = field.source if field.derived else field.name
            if name in self.__data__:  # a row read with only some columns keeps the hash it has
                setattr(self, field.name, digest_of(self.__data__[name], self._meta.database))


def sealed_fields(model) -> list[SealedText]:
    return [f for f in model._meta.sorted_fields if isinstance(f, SealedText)]


def lookup_fields(model) -> list[LookupHash]:
    return [f for f in model._meta.sorted_fields if isinstance(f, LookupHash)]
