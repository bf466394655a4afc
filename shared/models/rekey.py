"""Key rotation over stored data (``python run_gateway.py rotate-keys [--rehash]``).

* reseal: every sealed value that the current (first) LIPA_DATA_KEY key does not open is sealed again with
  it (MultiFernet.rotate); afterwards the older keys can be dropped from LIPA_DATA_KEY.
* rehash: every look-up hash is recomputed from its sealed value with the current LIPA_LOOKUP_KEY (run it
  after changing that key, with the gateway stopped: until it finishes, searches by phone miss old rows).

Both walk each table by id, one short write transaction per batch, and only write what changes, so they
can be interrupted and run again. Each UPDATE is guarded by the token it read (compare-and-set): a value the
gateway rewrote meanwhile is left as the gateway wrote it.
"""
from __future__ import annotations

from ..privacy.crypto import lookup_hash, needs_rotation, rotate, unseal
from ..db import db, write_tx
from . import ALL_MODELS
from ..privacy.sealed import lookup_fields, sealed_fields

BATCH = 1000


def reseal_all(batch: int = BATCH) -> dict[str, int]:
    """{"table.column": values re-sealed} for every sealed column."""
    done = {}
    with db.connection_context():
        for model in ALL_MODELS:
            for field in sealed_fields(model):
                name = f"{model._meta.table_name}.{field.column_name}"
                done[name] = _walk(model, [field.column_name], _reseal, batch)
    return done


def rehash_all(batch: int = BATCH) -> dict[str, int]:
    """{"table.column": hashes rewritten} for every look-up hash column."""
    done = {}
    with db.connection_context():
        for model in ALL_MODELS:
            for field in lookup_fields(model):
                source = model._meta.fields[field.source].column_name
                change = _rehash_derived if field.derived else _rehash_own
                done[f"{model._meta.table_name}.{field.column_name}"] = _walk(
                    model, [source, field.column_name], change, batch)
    return done


def _reseal(columns, row):
    """({column: new value}, {column: value it must still have}), or None when nothing changes."""
    (column,), (token,) = columns, row
    if not token or not needs_rotation(token):
        return None
    return {column: rotate(token)}, {column: token}


def _rehash_derived(columns, row):
    (source, column), (token, current) = columns, row
    wanted = lookup_hash(unseal(token)) if token else None
    return None if wanted == current else ({column: wanted}, {source: token})


def _rehash_own(columns, row):
    """active_phone: set only while the payment is active, then the hash of its phone."""
    (source, column), (token, current) = columns, row
    if current is None or not token:
        return None
    wanted = lookup_hash(unseal(token))
    return None if wanted == current else ({column: wanted}, {source: token, column: current})


def _walk(model, columns: list[str], change, batch: int) -> int:
    """Rows in id order, ``batch`` per write transaction; the changed ones written in one executemany."""
    table, param = model._meta.table_name, db.obj.param
    listed = ", ".join(f'"{c}"' for c in columns)
    select = f'SELECT "id", {listed} FROM "{table}" WHERE "id" > {param} ORDER BY "id" LIMIT {int(batch)}'
    last, changed = 0, 0
    while True:
        with write_tx():
            rows = db.execute_sql(select, (last,)).fetchall()
            updates = [(row[0], *update) for row in rows if (update := change(columns, row[1:])) is not None]
            changed += _guarded_updates(table, updates)
        if len(rows) < batch:
            return changed
        last = rows[-1][0]


def _guarded_updates(table: str, updates: list) -> int:
    """UPDATE … SET new WHERE id AND the guard columns still hold what was read; the rows changed."""
    if not updates:
        return 0
    param = db.obj.param
    _, new, guard = updates[0]
    sets = ", ".join(f'"{c}" = {param}' for c in new)
    where = " AND ".join(f'"{c}" = {param}' for c in guard)
    cursor = db.cursor()
    cursor.executemany(f'UPDATE "{table}" SET {sets} WHERE "id" = {param} AND {where}',
                       [(*new.values(), row_id, *guard.values()) for row_id, new, guard in updates])
    return cursor.rowcount
