"""Migrations: versioned, idempotent, and able to bring an older database up to date."""
from shared.db import db, init_db
from shared.models import SchemaVersion
from shared.models.migrations import MIGRATIONS, current_version, migrate


def test_fresh_database_reaches_the_latest_version(fresh_db_url):
    init_db(fresh_db_url)
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


def test_migration_13_adds_the_session_columns_and_drops_the_clear_daraja_token(db_url, config):
    from shared.models import IdempotencyRecord, LoginFailure, Merchant, ProviderToken, StaffToken

    init_db(db_url)
    migrate()
    with db.connection_context():
        shop = Merchant.create(name="Acme:shop")
        IdempotencyRecord.create(scope="merchant:Acme:shop", key="order-1", request_hash="h", status_code=201,
                                 response_body="{}")  # scoped by name, as versions up to 12 stored it
        token_table, staff_tokens = ProviderToken._meta.table_name, StaffToken._meta.table_name
        db.execute_sql(f'DROP TABLE "{LoginFailure._meta.table_name}"')
        db.execute_sql(f'ALTER TABLE "{staff_tokens}" DROP COLUMN last_used_at')
        db.execute_sql(f"INSERT INTO {token_table} (name, token, expires_at) VALUES ('daraja', 'clear-token', "
                       "'2030-01-01 00:00:00')")  # as versions up to 12 stored it
        SchemaVersion.delete().where(SchemaVersion.version == 13).execute()
    assert migrate() == MIGRATIONS[-1][0]
    with db.connection_context():
        assert "last_used_at" in {c.name for c in db.get_columns(staff_tokens)}
        assert "merchant_id" in {c.name for c in db.get_columns("payment")}
        assert LoginFailure.table_exists() and ProviderToken.select().count() == 0
        assert IdempotencyRecord.get().scope == f"merchant:{shop.id}"
