"""The database: declared unbound here, bound by init_db() from the app factory or a command."""
from __future__ import annotations

import functools
import logging
import random
import time
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect

from .errors import ConfigError

db = peewee.DatabaseProxy()
log = logging.getLogger(__name__)

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 10_000,
    "synchronous": "normal",
    "foreign_keys": 1,
}


class BaseModel(peewee.Model):
    class Meta:
        database = db
        legacy_table_names = False


def init_db(url: str) -> peewee.Database:
    """Open ``sqlite:///path`` (WAL, busy timeout) or ``postgresql://…`` and bind the proxy to it."""
    current = db.obj
    if current is not None and getattr(current, "lipa_url", None) == url:
        return current  # already bound (a second app in the same process shares it)
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        database = connect(url, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    elif scheme in ("postgresql", "postgres"):
        database = connect(url.replace("postgres://", "postgresql://", 1))
    else:
        raise ConfigError("DATABASE_URL", f"unsupported scheme {scheme!r}; use sqlite:/// or postgresql://")
    database.lipa_url = url
    db.initialize(database)
    return database


def is_sqlite() -> bool:
    return isinstance(db.obj, peewee.SqliteDatabase)


def refresh_planner_stats() -> None:
    """SQLite only: sample each index (at most 20,000 rows, about 0.1 s on a million payments) into
    sqlite_stat1, so a filter on account or phone is served by its own index rather than by the status,
    channel or flagged one (without statistics SQLite rates them alike). PostgreSQL's autovacuum analyzes."""
    if is_sqlite():
        db.execute_sql("PRAGMA analysis_limit=20000")
        db.execute_sql("ANALYZE")


def write_tx():
    """A write transaction. On SQLite it takes the write lock up front (BEGIN IMMEDIATE), so two
    processes never both read a row and then fail to upgrade; on PostgreSQL rows are locked with
    ``SELECT … FOR UPDATE`` by the callers."""
    if is_sqlite():
        return db.atomic("IMMEDIATE")
    return db.atomic()


def _is_transient(exc: Exception) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text or "deadlock" in text or "could not serialize" in text


def retry_locked(fn=None, *, attempts: int = 5):
    """Retry a whole transaction when the database is locked or a serialization conflict occurs."""

    def wrap(func):
        @functools.wraps(func)
        def inner(*args, **kwargs):
            for attempt in range(1, attempts + 1):
                try:
                    return func(*args, **kwargs)
                except peewee.OperationalError as exc:
                    if attempt == attempts or not _is_transient(exc):
                        raise
                    log.warning("database busy (%s); retry %d", type(exc).__name__, attempt)
                    time.sleep(0.05 * attempt + random.random() * 0.05)
            return None  # pragma: no cover

        return inner

    return wrap(fn) if fn else wrap


def for_update(query):
    """Lock the selected rows on PostgreSQL; SQLite's write lock (BEGIN IMMEDIATE) already covers it."""
    return query if is_sqlite() else query.for_update()
