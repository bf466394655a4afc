"""Versioned migrations. Each step runs once, in order, inside a transaction; the version is recorded."""
from __future__ import annotations

import logging

from .. import models as m
from ..privacy.crypto import lookup_hash, seal
from ..db import db, is_sqlite, refresh_planner_stats, schema_tx
from . import SchemaVersion
from ..privacy.sealed import lookup_fields, sealed_fields

log = logging.getLogger(__name__)


def _v1_initial(database) -> None:
    """The first schema."""
    database.create_tables([
        m.Merchant, m.PaymentRequest, m.Payment, m.PaymentEvent, m.InboxMessage, m.UssdSession,
        m.PhonePreference, m.ProviderToken, m.Alert, m.Setting,
    ], safe=True)


def _v2_notifications(database) -> None:
    """The notification outbox (issue 3)."""
    database.create_tables([m.Notification], safe=True)


def _v3_notification_index(database) -> None:
    """Index for the per-phone reply rate limit (same name peewee gives it on a fresh database)."""
    database.execute_sql("CREATE INDEX IF NOT EXISTS notification_recipient_kind_created_at "
                         "ON notification (recipient, kind, created_at)")


def _v4_money_operations(database) -> None:
    """Refunds, job runs and leases, reconciliation, audit log (issue 4); C2B payer columns."""
    database.create_tables([m.Refund, m.JobState, m.JobRun, m.StatementImport, m.StatementLine,
                            m.ReconException, m.AuditLog], safe=True)
    _add_columns(database, m.Payment, ["payer_hash", "payer_name", "refunded_amount"])


def _v5_api(database) -> None:
    """Staff, tokens, merchant keys, idempotency, rate limits, receipts (issue 5)."""
    database.create_tables([m.Staff, m.StaffToken, m.ApiKey, m.IdempotencyRecord, m.RateLimitBucket,
                            m.Receipt], safe=True)


def _v6_audit_index(database) -> None:
    """The timeline finds a payment's staff actions by target (same name peewee gives it when fresh)."""
    database.execute_sql("CREATE INDEX IF NOT EXISTS audit_log_target_type_target_id "
                         "ON audit_log (target_type, target_id)")


def _v7_feed_index(database) -> None:
    """The events feed reads notification changes in (updated_at, id) order."""
    database.execute_sql("CREATE INDEX IF NOT EXISTS notification_updated_at_id ON notification (updated_at, id)")


def _v8_read_paths(database) -> None:
    """Issue 5 speed: the stats grid reads one index in (hour, status, result code) order, with no table
    lookups and no sort; notification counts by status skip-scan (status, created_at); and SQLite gets
    planner statistics (see refresh_planner_stats)."""
    bucket = "strftime('%Y-%m-%d %H:00:00', created_at)" if is_sqlite() else "date_trunc('hour', created_at)"
    database.execute_sql("CREATE INDEX IF NOT EXISTS payment_hour_status_result_code "
                         f"ON payment ({bucket}, status, result_code, created_at, amount)")
    database.execute_sql("CREATE INDEX IF NOT EXISTS notification_status_created_at "
                         "ON notification (status, created_at)")
    refresh_planner_stats()


def _v11_verifications(database) -> None:
    """Issue 12: receipts checked with M-Pesa's Transaction Status before a manual completion, and
    manual money changes waiting for a second admin (four eyes)."""
    database.create_tables([m.Verification, m.Approval], safe=True)


def _v12_webhook_secrets(database) -> None:
    """Issue 13: a webhook signing secret per merchant, sealed (one shared secret let each merchant forge
    the others' events)."""
    database.create_tables([m.WebhookSecret], safe=True)


def _v13_staff_and_merchants(database) -> None:
    """Issue 13: payments remember the merchant that created them (merchants read their own), tokens their
    last use (the idle timeout), failed logins are counted, and the cached Daraja token is sealed: the
    clear one stored so far is dropped (the next STK push fetches a new one). Stored idempotent answers move
    from the caller's name to its id (their new scope), so a retry sent across the upgrade still replays."""
    _add_columns(database, m.Payment, ["merchant"])
    for kind, model, name in (("merchant", m.Merchant, m.Merchant.name), ("staff", m.Staff, m.Staff.username)):
        for row_id, row_name in model.select(model.id, name).tuples():
            (m.IdempotencyRecord.update(scope=f"{kind}:{row_id}")
             .where(m.IdempotencyRecord.scope == f"{kind}:{row_name}").execute())
    database.execute_sql("CREATE INDEX IF NOT EXISTS payment_merchant_id ON payment (merchant_id)")
    _add_columns(database, m.StaffToken, ["last_used_at"])
    database.create_tables([m.LoginFailure], safe=True)
    m.ProviderToken.delete().execute()


def _v14_money_collected(database) -> None:
    """Issue 12: the dashboard's money is dated by when M-Pesa said it was paid, so collected money is a
    range scan of (completed_at, status, amount, refunded_amount), and completed refunds of (status, updated_at)."""
    database.execute_sql("CREATE INDEX IF NOT EXISTS payment_completed_at_collected "
                         "ON payment (completed_at, status, amount, refunded_amount)")
    database.execute_sql("CREATE INDEX IF NOT EXISTS refund_status_updated_at ON refund (status, updated_at, amount)")


def _v15_background_imports(database) -> None:
    """Issue 12: large statements import in the background, in chunks, with progress and a lease.

    Plain ALTER TABLE … DEFAULT: peewee's SQLite migrator adds a NOT NULL column by rebuilding the table,
    which a statement_import that statement lines point to (foreign keys on) refuses."""
    present = {c.name for c in database.get_columns("statement_import")}
    stamp = "DATETIME" if is_sqlite() else "TIMESTAMP"
    for name, ddl in (("lines_total", "INTEGER NOT NULL DEFAULT 0"), ("lines_done", "INTEGER NOT NULL DEFAULT 0"),
                      ("lease_until", f"{stamp} NULL"), ("error", "VARCHAR(255) NOT NULL DEFAULT ''")):
        if name not in present:
            database.execute_sql(f'ALTER TABLE "statement_import" ADD COLUMN "{name}" {ddl}')
    database.create_tables([m.StatementUpload], safe=True)


def _v16_email(database) -> None:
    """Issue 16: a payment request may carry the payer's e-mail (the receipt goes there) and a merchant the
    address of its daily settlement summary; both sealed, and nullable, so a plain ADD COLUMN does it."""
    _add_columns(database, m.PaymentRequest, ["email"])
    _add_columns(database, m.Merchant, ["email"])


# Tables with sealed columns, and the clear-text indexes migration 9 replaces by look-up hash ones.
SEALED_MODELS = (m.Payment, m.PaymentRequest, m.Notification, m.PaymentEvent, m.InboxMessage, m.UssdSession,
                 m.PhonePreference, m.StatementLine, m.IdempotencyRecord)
CLEAR_INDEXES = ("payment_phone", "payment_phone_created_at", "notification_recipient_kind_created_at",
                 "phone_preference_phone")
BATCH = 2000


def _v9_seal_personal_data(database) -> None:
    """Issue 7: phones, payer names and raw provider bodies encrypted at rest (shared/privacy/crypto.py), with keyed
    look-up hashes to search by; existing rows are sealed in batches. Needs the keys installed first.
    SQLite zeroes what it frees meanwhile (secure_delete), so the clear values and the dropped clear-text
    indexes do not linger in free pages of the file; PostgreSQL keeps old row versions until VACUUM FULL."""
    if not is_sqlite():
        _seal_personal_data(database)
        return
    previous = database.execute_sql("PRAGMA secure_delete").fetchone()[0]
    database.execute_sql("PRAGMA secure_delete = ON")
    try:
        _seal_personal_data(database)
    finally:
        database.execute_sql(f"PRAGMA secure_delete = {int(previous)}")


def _seal_personal_data(database) -> None:
    for name in CLEAR_INDEXES:
        database.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
    if not is_sqlite():  # a token does not fit VARCHAR(12); SQLite does not enforce lengths
        for model in SEALED_MODELS:
            table = model._meta.table_name
            for field in _present(database, model, sealed_fields(model)):
                database.execute_sql(f'ALTER TABLE "{table}" ALTER COLUMN "{field.column_name}" TYPE TEXT')
            for field in lookup_fields(model):
                if field.column_name in {c.name for c in database.get_columns(table)}:
                    database.execute_sql(f'ALTER TABLE "{table}" ALTER COLUMN "{field.column_name}" TYPE VARCHAR(64)')
    _add_columns(database, m.Payment, ["phone_hash", "payer_lookup"])
    _add_columns(database, m.Notification, ["recipient_hash"])
    _add_columns(database, m.PhonePreference, ["phone_hash"])
    for model in SEALED_MODELS:
        _seal_rows(database, model)
    database.execute_sql("CREATE INDEX IF NOT EXISTS payment_phone_hash ON payment (phone_hash)")  # pages by id
    database.execute_sql("CREATE INDEX IF NOT EXISTS payment_phone_hash_created_at ON payment (phone_hash, created_at)")
    database.execute_sql("CREATE INDEX IF NOT EXISTS notification_recipient_hash_kind_created_at "
                         "ON notification (recipient_hash, kind, created_at)")
    database.execute_sql("CREATE UNIQUE INDEX IF NOT EXISTS phone_preference_phone_hash "
                         "ON phone_preference (phone_hash)")
    refresh_planner_stats()


def _seal_rows(database, model) -> None:
    """Every row's clear values sealed and its look-up hashes computed, BATCH rows per UPDATE round."""
    table, param = model._meta.table_name, database.param
    sealed = [f.column_name for f in _present(database, model, sealed_fields(model))]
    lookups = lookup_fields(model)
    hashed_own = [f.column_name for f in lookups if not f.derived]  # active_phone: the hash of its own value
    derived = [(f.column_name, model._meta.fields[f.source].column_name) for f in lookups if f.derived]
    read = sealed + hashed_own
    written = sealed + hashed_own + [column for column, _ in derived]
    columns = ", ".join(f'"{c}"' for c in read)
    assignments = ", ".join(f'"{c}" = {param}' for c in written)
    select = f'SELECT "id", {columns} FROM "{table}" WHERE "id" > {param} ORDER BY "id" LIMIT {BATCH}'
    update = f'UPDATE "{table}" SET {assignments} WHERE "id" = {param}'
    last = 0
    while rows := database.execute_sql(select, (last,)).fetchall():
        params = []
        for row_id, *values in rows:
            clear = dict(zip(read, values, strict=True))
            new = [None if v is None else v if v == "" else seal(v) for v in values[:len(sealed)]]
            new += [lookup_hash(clear[c]) if clear[c] else None for c in hashed_own]
            new += [lookup_hash(clear[source]) if clear[source] else None for _, source in derived]
            params.append((*new, row_id))
        _execute_many(database, update, params)
        last = rows[-1][0]


def _present(database, model, fields) -> list:
    """The fields whose column the table already has: a sealed column added by a later step (e.g. 16's
    e-mails) does not exist yet when step 9 runs on an old database, and is written sealed from the start."""
    columns = {c.name for c in database.get_columns(model._meta.table_name)}
    return [f for f in fields if f.column_name in columns]


def _execute_many(database, sql: str, params: list[tuple]) -> None:
    cursor = database.cursor()
    if is_sqlite():
        cursor.executemany(sql, params)
    else:
        from psycopg2.extras import execute_batch

        execute_batch(cursor, sql, params, page_size=500)


def _add_columns(database, model, names: list[str]) -> None:
    """Add columns an older table lacks (a fresh table already has them from the model)."""
    from playhouse.migrate import SchemaMigrator, migrate

    table = model._meta.table_name
    present = {c.name for c in database.get_columns(table)}
    migrator = SchemaMigrator.from_database(database)
    ops = [migrator.add_column(table, name, model._meta.fields[name]) for name in names
           if model._meta.fields[name].column_name not in present]
    if ops:
        migrate(*ops)


def _v10_late_callbacks(database) -> None:
    """Success callbacks that came after a payment was FAILED/CANCELLED/EXPIRED, kept to verify (issue 12)."""
    database.create_tables([m.LateCallback], safe=True)


# Append new steps; never edit or reorder a released one. Table creation uses the current model
# classes, so a step that adds columns to an existing table must check before altering.
MIGRATIONS = [
    (1, _v1_initial), (2, _v2_notifications), (3, _v3_notification_index), (4, _v4_money_operations),
    (5, _v5_api), (6, _v6_audit_index), (7, _v7_feed_index), (8, _v8_read_paths), (9, _v9_seal_personal_data),
    (10, _v10_late_callbacks), (11, _v11_verifications), (12, _v12_webhook_secrets),
    (13, _v13_staff_and_merchants), (14, _v14_money_collected), (15, _v15_background_imports),
    (16, _v16_email),
]


def current_version() -> int:
    if not SchemaVersion.table_exists():
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def _applied(version: int) -> bool:
    return SchemaVersion.select().where(SchemaVersion.version == version).exists()


def _pending() -> list:
    """The steps not recorded yet, read without a lock: a recorded step stays recorded, so a database
    already up to date (every start after the first, every app a test builds) takes no schema lock at all."""
    if not SchemaVersion.table_exists():
        return MIGRATIONS
    done = {version for (version,) in SchemaVersion.select(SchemaVersion.version).tuples()}
    return [(version, step) for version, step in MIGRATIONS if version not in done]


def migrate() -> int:
    """Bring the bound database up to date; safe to run from several processes at once."""
    database = db.obj
    with database.connection_context():
        pending = _pending()
        if pending:
            with schema_tx():
                database.create_tables([SchemaVersion], safe=True)
        for version, step in pending:
            with schema_tx():  # each step once: by its own number, so a step merged late still runs
                if _applied(version):
                    continue
                log.info("migrating database to version %d", version)
                step(database)
                SchemaVersion.create(version=version)
        return current_version()

