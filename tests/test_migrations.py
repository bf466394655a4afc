"""Migrations: versioned, idempotent, and able to bring an older database up to date."""
from shared.db import db, init_db
from shared.models.migrations import MIGRATIONS, current_version, migrate
from shared.models import SchemaVersion


def test_fresh_database_reaches_the_latest_version(db_url):
    init_db(db_url)
    assert migrate() == MIGRATIONS[-1][0]
    assert migrate() == MIGRATIONS[-1][0]  # a second run does nothing
    with db.connection_context():
        assert SchemaVersion.select().count() == len(MIGRATIONS)


def test_older_database_gets_the_new_columns(db_url):
    init_db(db_url)
    migrate()
    with db.connection_context():
        db.execute_sql("DROP TABLE audit_log")
        db.execute_sql("ALTER TABLE payment DROP COLUMN payer_hash")
        SchemaVersion.delete().where(SchemaVersion.version >= 4).execute()
        assert current_version() == 3
    assert migrate() == MIGRATIONS[-1][0]
    with db.connection_context():
        assert "payer_hash" in {c.name for c in db.get_columns("payment")}
        assert "audit_log" in db.get_tables()
