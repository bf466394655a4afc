"""Hot queries built once: peewee spends 0.2-1 ms of Python building the SQL text of even a one-table query,
several times what SQLite or PostgreSQL then take to answer it (measured in bench/README.md). The few queries
that every USSD hop and every STK callback run are built once per kind of database and run with new values.

    SESSION = Prepared(lambda p: UssdSession.select(UssdSession.id, UssdSession.last_text)
                       .where(UssdSession.session_id == p[0]), UssdSession.session_id)
    row = SESSION.first("ATUid_123")

``build`` gets one placeholder per field and must put placeholder i where a value of ``fields[i]`` goes; each
value is converted by that field when the query runs (a phone look-up is hashed, JSON dumped, a sealed value
sealed), exactly as peewee converts it. Rows come back as model instances with every column converted back by
its field as peewee does (sealed values opened, timestamps parsed). A SELECT names its columns as fields of one
model (no joins, no expressions).
"""
from __future__ import annotations

from typing import Callable

import peewee

from shared.db import db


class _Marker(str):
    """A placeholder's text, recognisable in the compiled parameters."""


class Prepared:
    """One query (SELECT, UPDATE or DELETE) compiled once per database class, run with new values."""

    def __init__(self, build: Callable[[list], peewee.Query], *fields: peewee.Field):
        self.build = build
        self.fields = fields
        self._compiled: dict[type, tuple[peewee.Query, str, list]] = {}
        self._columns: list[tuple[str, Callable]] | None = None

    def _compile(self) -> tuple[peewee.Query, str, list]:
        database = db.obj
        compiled = self._compiled.get(type(database))
        if compiled is None:
            markers = [_Marker(f"\x00lipa-prepared-{i}\x00") for i in range(len(self.fields))]
            query = self.build([peewee.Value(marker, converter=False) for marker in markers])
            sql, params = query.sql()
            index = {marker: i for i, marker in enumerate(markers)}
            # Each parameter: the index of the value that fills it, or a constant peewee put there (a LIMIT).
            slots = [(index[p], None) if isinstance(p, str) and p in index else (None, p) for p in params]
            missing = set(index.values()) - {i for i, _ in slots}
            if missing:
                raise ValueError(f"placeholders {sorted(missing)} are not used by the query")
            compiled = self._compiled[type(database)] = (query, sql, slots)
        return compiled

    def _params(self, slots: list, values: tuple) -> list:
        if len(values) != len(self.fields):
            raise TypeError(f"expected {len(self.fields)} values, got {len(values)}")
        return [self.fields[i].db_value(values[i]) if i is not None else constant for i, constant in slots]

    def rows(self, *values) -> list:
        """The rows of a SELECT, as instances of its model (unchanged, so save() writes only what is set)."""
        query, sql, slots = self._compile()
        columns = self._columns or self._select_columns(query)
        rows = []
        for values_row in db.execute_sql(sql, self._params(slots, values)).fetchall():
            row = query.model(__no_default__=1, **{name: convert(value)
                                                   for (name, convert), value in zip(columns, values_row, strict=True)})
            row._dirty.clear()
            rows.append(row)
        return rows

    def first(self, *values):
        """The first row of a SELECT, or None."""
        rows = self.rows(*values)
        return rows[0] if rows else None

    def _select_columns(self, query) -> list[tuple[str, Callable]]:
        fields = getattr(query, "_returning", None) or ()
        if not all(isinstance(f, peewee.Field) and f.model is query.model for f in fields):
            raise TypeError("a prepared SELECT names its columns as fields of its own model")
        self._columns = [(f.name, f.python_value) for f in fields]
        return self._columns

    def execute(self, *values) -> int:
        """Run an UPDATE or DELETE; returns the number of rows it changed."""
        _, sql, slots = self._compile()
        return db.execute_sql(sql, self._params(slots, values)).rowcount

    def row(self, *values) -> tuple | None:
        """The first row of a SELECT of expressions (SUMs), as the database gives it, or None."""
        _, sql, slots = self._compile()
        return db.execute_sql(sql, self._params(slots, values)).fetchone()

    def scalar(self, *values):
        """The first column of the first row (a COUNT), or None."""
        _, sql, slots = self._compile()
        row = db.execute_sql(sql, self._params(slots, values)).fetchone()
        return row[0] if row else None

    def insert(self, *values) -> int:
        """Run an INSERT; returns the new row's id (PostgreSQL's RETURNING, SQLite's last row id)."""
        _, sql, slots = self._compile()
        cursor = db.execute_sql(sql, self._params(slots, values))
        return cursor.fetchone()[0] if " RETURNING " in sql else cursor.lastrowid


_INSERTS: dict[tuple, Prepared] = {}
_NEW_INSERTS: dict[tuple, Prepared] = {}
_UPDATES: dict[tuple, Prepared] = {}


def create(model: type[peewee.Model], **values) -> peewee.Model:
    """``model.create(**values)`` with its INSERT built once per model and set of columns: defaults are filled
    per call (a timestamp is the time of this insert), look-up hashes derived, sealed fields sealed, exactly
    as create() does. For the rows every callback writes (inbox, event, outbox), where peewee spent more
    time building the INSERT's text than the database took to run it."""
    row, names = _new_row(model, values)
    insert = _built(_INSERTS, model, names, lambda fields: Prepared(
        lambda p: model.insert(dict(zip(fields, p, strict=True))), *fields))
    row.id = insert.insert(*(row.__data__[name] for name in names))
    row._dirty.clear()
    return row


def create_new(model: type[peewee.Model], unique: peewee.Field, **values) -> peewee.Model | None:
    """create(), unless a row with the same ``unique`` value exists: then nothing is written and None is
    returned. One statement (``INSERT … ON CONFLICT (unique) DO NOTHING RETURNING id``, on SQLite and
    PostgreSQL alike) where a look-up, a savepoint, the insert and its release took four."""
    row, names = _new_row(model, values)
    key = model._meta.primary_key
    insert = _built(_NEW_INSERTS, model, names + (unique.name,), lambda fields: Prepared(
        lambda p: model.insert(dict(zip(fields[:-1], p, strict=True)))
        .on_conflict(conflict_target=[unique], action="NOTHING").returning(key), *fields[:-1]))
    _, sql, slots = insert._compile()
    found = db.execute_sql(sql, insert._params(slots, tuple(row.__data__[name] for name in names))).fetchone()
    if found is None:
        return None
    row.id = found[0]
    row._dirty.clear()
    return row


def _new_row(model, values: dict) -> tuple[peewee.Model, tuple]:
    """The row create() would write (defaults filled, look-ups derived) and the names of its columns."""
    row = model(**values)
    _derive_lookups(row)
    names = tuple(name for name in model._meta.sorted_field_names
                  if name in row.__data__ and name != model._meta.primary_key.name)
    return row, names


def save(row: peewee.Model) -> int:
    """``row.save()`` for a stored row: its changed columns (and look-up hashes, re-derived) written by an UPDATE
    built once per model and set of columns. For the payment every status change writes."""
    model, key = type(row), type(row)._meta.primary_key
    _derive_lookups(row)
    changed = {field.name for field in row.dirty_fields}
    names = tuple(name for name in model._meta.sorted_field_names if name in changed)
    if not names:
        return 0
    update = _built(_UPDATES, model, names, lambda fields: Prepared(
        lambda p: model.update(dict(zip(fields, p[:-1], strict=True))).where(key == p[-1]), *fields, key))
    written = update.execute(*(row.__data__[name] for name in names), row._pk)
    row._dirty.clear()
    return written


def _derive_lookups(row) -> None:
    """shared.privacy.sealed.KeepsLookups: each look-up hash from its plain value, as save() does."""
    prepare = getattr(row, "prepare_save", None)
    if prepare is not None:
        prepare()


def _built(cache: dict, model, names: tuple, build) -> Prepared:
    """The statement for this model and these columns, built once by ``build(fields)``."""
    statement = cache.get((model, names))
    if statement is None:
        statement = cache.setdefault((model, names), build([model._meta.fields[name] for name in names]))
    return statement
