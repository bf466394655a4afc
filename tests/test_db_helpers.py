"""shared/db.py on the suite's database (SQLite file or PostgreSQL): binding, the write transaction and
row locks each engine needs, retrying a transaction the database reported busy, closing a dropped
connection."""
from __future__ import annotations

import logging

import peewee
import pytest

from shared import db as dbmod
from shared.db import db, for_update, init_db, is_sqlite, retry_locked, write_tx
from shared.errors import ConfigError
from shared.models import Setting
from shared.models.migrations import migrate
from tests.conftest import PG_URL
from tests.helpers import wait_for


@pytest.fixture
def unopened(db_url):
    """The database bound and migrated, no connection open (for tests that open and break their own)."""
    database = init_db(db_url)
    migrate()
    yield database
    db.close()


@pytest.fixture
def bound(unopened):
    with db.connection_context():
        yield unopened


def test_init_db_refuses_an_unknown_scheme_naming_the_variable():
    with pytest.raises(ConfigError) as info:
        init_db("mysql://root@127.0.0.1/lipa")
    assert info.value.variable == "DATABASE_URL"


def test_init_db_binds_once_per_url(bound, db_url):
    assert init_db(db_url) is bound and db.obj is bound
    assert is_sqlite() == db_url.startswith("sqlite")


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (set LIPA_TEST_DATABASE_URL)")
def test_postgres_scheme_alias_binds_postgresql(unopened):
    alias = PG_URL.replace("postgresql://", "postgres://", 1)
    try:
        database = init_db(alias)
        assert isinstance(database, peewee.PostgresqlDatabase) and database.lipa_url == alias
        with db.connection_context():
            assert db.execute_sql("SELECT 1").fetchone() == (1,)
    finally:
        init_db(PG_URL)


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (set LIPA_TEST_DATABASE_URL)")
def test_a_pooled_connection_is_taken_without_a_round_trip_and_a_dead_one_is_replaced(unopened):
    """Taking a pooled connection sends nothing (peewee's pool sent SELECT 1 every time: half a USSD hop's
    statements), yet one whose backend the server terminated while it sat in the pool is not handed out
    again: the next request just works."""
    import psycopg2

    admin = psycopg2.connect(PG_URL)
    admin.autocommit = True
    cur = admin.cursor()

    def last_query(pid):
        cur.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
        row = cur.fetchone()
        return row[0] if row else None

    with db.connection_context():
        pid = db.execute_sql("SELECT pg_backend_pid() /* marker */").fetchone()[0]
    with db.connection_context():
        db.connection()  # taken from the pool: the same backend, which was sent nothing
        assert last_query(pid) == "SELECT pg_backend_pid() /* marker */"
    cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    wait_for(lambda: last_query(pid) is None, timeout=10)  # gone once it no longer shows
    with db.connection_context():
        assert db.execute_sql("SELECT pg_backend_pid()").fetchone()[0] != pid
    admin.close()


def test_write_tx_commits_and_rolls_back(bound):
    with write_tx():
        Setting.create(key="cov.kept", value="1")
    with pytest.raises(RuntimeError), write_tx():
        Setting.create(key="cov.dropped", value="1")
        raise RuntimeError("abandon")
    assert [s.key for s in Setting.select().where(Setting.key.startswith("cov."))] == ["cov.kept"]


def test_for_update_locks_rows_only_on_postgresql(bound):
    sql, _ = for_update(Setting.select().where(Setting.key == "x")).sql()
    assert ("FOR UPDATE" in sql) is (not is_sqlite())
    with write_tx():
        assert list(for_update(Setting.select().where(Setting.key == "x"))) == []


def test_retry_locked_retries_a_busy_database_then_succeeds(caplog):
    calls = []

    @retry_locked
    def save():
        calls.append(1)
        if len(calls) < 3:
            raise peewee.OperationalError("database is locked")
        return "saved"

    with caplog.at_level(logging.WARNING, logger="shared.db"):
        assert save() == "saved"
    assert len(calls) == 3 and caplog.text.count("database busy") == 2


@pytest.mark.parametrize("message", ["deadlock detected", "could not serialize access due to concurrent update"])
def test_retry_locked_gives_up_after_its_attempts(message):
    calls = []

    @retry_locked(attempts=2)
    def save():
        calls.append(1)
        raise peewee.OperationalError(message)

    with pytest.raises(peewee.OperationalError):
        save()
    assert len(calls) == 2


def test_retry_locked_does_not_retry_other_errors():
    calls = []

    @retry_locked
    def save():
        calls.append(1)
        raise peewee.OperationalError("no such table: nowhere")

    with pytest.raises(peewee.OperationalError, match="no such table"):
        save()
    assert calls == [1]


def test_close_quietly_resets_a_connection_that_refuses_to_close(unopened, caplog):
    """A request that failed inside a transaction leaves it open, and closing then raises; the thread's
    connection state must still be reset, so its next request opens a working connection."""
    db.connect()
    db.atomic().__enter__()  # never left: the request died inside it
    with caplog.at_level(logging.WARNING, logger="shared.db"):
        dbmod.close_quietly()
    assert db.is_closed() and "closing a broken database connection" in caplog.text
    dbmod.close_quietly()  # nothing open: nothing to do
    with db.connection_context():
        assert db.execute_sql("SELECT 1").fetchone() == (1,)


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (set LIPA_TEST_DATABASE_URL)")
def test_a_process_opens_at_most_its_pool_of_postgresql_connections(unopened):
    """LIPA_DB_POOL_MAX: a third thread waits for one of two connections instead of opening its own (three
    gateways of two workers, a connection per server thread, ran PostgreSQL out of connections)."""
    import threading

    capped = PG_URL + ("&" if "?" in PG_URL else "?") + "application_name=lipa_cap"
    database = init_db(capped, pool_max=2)
    held, release, third = threading.Event(), threading.Event(), threading.Event()

    def hold():
        with db.connection_context():
            db.execute_sql("SELECT 1")
            held.set()
            release.wait(10)

    def late():
        with db.connection_context():
            db.execute_sql("SELECT 1")
            third.set()

    try:
        holders = [threading.Thread(target=hold) for _ in range(2)]
        for thread in holders:
            thread.start()
        wait_for(lambda: len(database._in_use) == 2, timeout=10)
        waiter = threading.Thread(target=late)
        waiter.start()
        assert not third.wait(0.3) and len(database._in_use) == 2  # waiting, not a third connection
        release.set()
        assert third.wait(10) and len(database._in_use) <= 2
        for thread in [*holders, waiter]:
            thread.join(10)
    finally:
        release.set()
        database.close_all()
        init_db(PG_URL)
