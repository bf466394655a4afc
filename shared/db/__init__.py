"""The database: declared unbound here, bound by init_db() from the app factory or a command."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import select
import threading
import time
from urllib.parse import urlparse

import peewee
from playhouse.db_url import parse
from playhouse.pool import MaxConnectionsExceeded, PooledDatabase, PooledPostgresqlDatabase, PooledSqliteDatabase

from ..errors import ConfigError

db = peewee.DatabaseProxy()
log = logging.getLogger(__name__)

# What a lost, refused or busy database raises: psycopg2's "connection already closed" comes through
# peewee as InterfaceError, the rest (refused, reset, timed out, locked) as OperationalError; a process whose
# every pooled PostgreSQL connection stayed in use past the wait, MaxConnectionsExceeded.
UNAVAILABLE = (peewee.OperationalError, peewee.InterfaceError, MaxConnectionsExceeded)
# Seconds to wait for a PostgreSQL connection (unless DATABASE_URL sets ?connect_timeout=): a host that does
# not answer at all fails a request, the health check and the background threads quickly instead of hanging
# them for the TCP timeout.
PG_CONNECT_TIMEOUT_S = 5
POOL_STALE_S = 300  # a pooled PostgreSQL connection older than this is replaced when next taken or given back
PG_POOL_MAX = 16  # LIPA_DB_POOL_MAX: PostgreSQL connections one process holds at most (see _PooledPostgres)

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


class _PooledSqlite(PooledSqliteDatabase):
    """A pooled connection is reused only while its file is still there: a request after the database's
    volume went away fails to connect (503), as when each request opened the file itself."""

    def _is_closed(self, conn) -> bool:
        return super()._is_closed(conn) or not os.path.exists(self.database)


class _PooledPostgres(PooledPostgresqlDatabase):
    """A pooled PostgreSQL connection is checked without a round trip when it is taken.

    peewee's pool sends ``SELECT 1`` on every checkout, which doubled the statements of a USSD hop (one read)
    and cost a fifth of its time (bench/README.md). An idle connection has nothing to read; one the server
    closed (a restart, pg_terminate_backend, a dropped proxy) has its FATAL notice or end of stream waiting
    on the socket. So: readable while idle means gone, and the pool opens a fresh one, as with ``SELECT 1``.
    A peer that vanished without a word (no FIN) is missed by both checks alike: the query's error answers.

    At most ``max_connections`` (LIPA_DB_POOL_MAX) are open at once in this process: a thread that finds them
    all in use waits for one (peewee's pool, up to PG_CONNECT_TIMEOUT_S, then the request answers 503 like
    any unreachable database). Without the cap every server thread (32 per granian worker, a greenlet per
    request under gevent) kept its own, and three gateways of two workers ran PostgreSQL out of its 100
    connections ("too many clients")."""

    def _is_closed(self, conn) -> bool:
        if conn.closed:
            return True
        status = self._adapter.txn_status(conn)
        if status == self._adapter.txn_unknown:
            return True
        if status != self._adapter.txn_idle:
            return super()._is_closed(conn)  # mid-transaction (rolled back there, or found dead)
        try:
            readable, _, _ = select.select([conn], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)


def init_db(url: str, *, pool_max: int = PG_POOL_MAX) -> peewee.Database:
    """Open ``sqlite:///path`` (WAL, busy timeout) or ``postgresql://…`` (at most ``pool_max`` connections in
    this process) and bind the proxy to it."""
    current = db.obj
    if current is not None and getattr(current, "lipa_url", None) == url:
        return current  # already bound (a second app in the same process shares it)
    scheme = urlparse(url).scheme
    # Pooled: a request's close() keeps its connection for the next one (bench/README.md: opening one per
    # request cost a PostgreSQL backend each time, and on SQLite the last close checkpoints the WAL).
    if scheme == "sqlite":
        database = _PooledSqlite(**parse(url), pragmas=SQLITE_PRAGMAS, check_same_thread=False,
                                 max_connections=None)
    elif scheme in ("postgresql", "postgres"):
        connect = {} if "connect_timeout=" in url else {"connect_timeout": PG_CONNECT_TIMEOUT_S}  # the URL's wins
        database = _PooledPostgres(**parse(url.replace("postgres://", "postgresql://", 1)), max_connections=pool_max,
                                   stale_timeout=POOL_STALE_S, timeout=PG_CONNECT_TIMEOUT_S, **connect)
    else:
        raise ConfigError("DATABASE_URL", f"unsupported scheme {scheme!r}; use sqlite:/// or postgresql://")
    database.lipa_url = url
    db.initialize(database)
    return database


def close_quietly() -> None:
    """Close this thread's connection, if open, even when the database already dropped it: whatever
    closing raises, the thread's state is reset, so its next connect() opens a new connection rather
    than reusing a dead one."""
    if db.is_closed():
        return
    try:
        db.close()
    except UNAVAILABLE as exc:
        log.warning("closing a broken database connection: %s", type(exc).__name__)
        db.dispose()


def _close_idle_before_fork() -> None:
    """A forked child (a gunicorn worker) must not share its parent's connections: idle pooled ones are
    closed first (the server closes its own before forking, so none is in use)."""
    if isinstance(db.obj, PooledDatabase):
        db.obj.close_idle()


os.register_at_fork(before=_close_idle_before_fork)


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
        return _sqlite_write()
    return db.atomic()


@contextlib.contextmanager
def one_statement_write():
    """For a write that is a single statement, which commits by itself (peewee runs in autocommit mode): no
    BEGIN and COMMIT around it, which on PostgreSQL are two round trips more than the INSERT (an STK
    callback's acknowledgement is that one INSERT: gateway/ingest/inbox.py). On SQLite the statement still
    queues on this process's writer lock, as write_tx does. Inside a caller's transaction it simply joins it."""
    if not is_sqlite():
        yield
        return
    with _writer_turn():
        yield


SCHEMA_LOCK_ID = 727274


@contextlib.contextmanager
def schema_tx():
    """A write transaction that also serialises schema changes across processes: on PostgreSQL two
    processes creating the same table at once collide on the catalogue, so they take one advisory lock."""
    with write_tx():
        if not is_sqlite():
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)" % SCHEMA_LOCK_ID)
        yield


_WRITER = threading.RLock()


@contextlib.contextmanager
def _sqlite_write():
    """One writer thread per process at a time, queued on a lock: SQLite's own busy handler makes a waiting
    writer sleep and poll (1 to 100 ms at a time), which starves writers under a burst. After the busy
    timeout the transaction is tried anyway, so a lock never waits longer than SQLite itself would."""
    with _writer_turn(), db.atomic("IMMEDIATE") as tx:
        yield tx


@contextlib.contextmanager
def _writer_turn():
    """This process's turn to write to SQLite (see _sqlite_write), or the busy timeout's worth of waiting."""
    held = _WRITER.acquire(timeout=SQLITE_PRAGMAS["busy_timeout"] / 1000)
    try:
        yield
    finally:
        if held:
            _WRITER.release()


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


def skip_locked(query):
    """Lock the selected rows on PostgreSQL, skipping rows another transaction holds, so concurrent claimers
    (the outbox's senders, the callback batches) split a queue instead of waiting on each other; SQLite has
    no FOR UPDATE (its BEGIN IMMEDIATE lock serializes claimers)."""
    return query if is_sqlite() else query.for_update(skip_locked=True)


def locked(model, pk):
    """Re-read one row inside the write transaction, locked on PostgreSQL (``model.DoesNotExist`` when there
    is none): the one way a status change reads the row it is about to change."""
    return for_update(model.select().where(model._meta.primary_key == pk)).get()
