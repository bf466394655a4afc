"""Versioned migrations. Each step runs once, in order, inside a transaction; the version is recorded."""
from __future__ import annotations

import logging

from .db import db, is_sqlite, write_tx
from .models import ALL_MODELS, SchemaVersion

log = logging.getLogger(__name__)


def _v1_initial(database) -> None:
    """The first schema."""
    database.create_tables(ALL_MODELS, safe=True)


# Append new steps; never edit or reorder a released one.
MIGRATIONS = [(1, _v1_initial)]


def current_version() -> int:
    if not SchemaVersion.table_exists():
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def migrate() -> int:
    """Bring the bound database up to date; safe to run from several processes at once."""
    database = db.obj
    with database.connection_context():
        database.create_tables([SchemaVersion], safe=True)
        for version, step in MIGRATIONS:
            with write_tx():
                if not is_sqlite():
                    database.execute_sql("SELECT pg_advisory_xact_lock(727274)")
                if current_version() >= version:
                    continue
                log.info("migrating database to version %d", version)
                step(database)
                SchemaVersion.create(version=version)
        return current_version()

