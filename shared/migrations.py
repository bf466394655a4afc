"""Versioned migrations. Each step runs once, in order, inside a transaction; the version is recorded."""
from __future__ import annotations

import logging

from . import models as m
from .db import db, is_sqlite, refresh_planner_stats, write_tx
from .models import SchemaVersion

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


def _add_columns(database, model, names: list[str]) -> None:
    """Add columns an older table lacks (a fresh table already has them from the model)."""
    from playhouse.migrate import SchemaMigrator, migrate

    table = model._meta.table_name
    present = {c.name for c in database.get_columns(table)}
    migrator = SchemaMigrator.from_database(database)
    ops = [migrator.add_column(table, name, model._meta.fields[name]) for name in names if name not in present]
    if ops:
        migrate(*ops)


# Append new steps; never edit or reorder a released one. Table creation uses the current model
# classes, so a step that adds columns to an existing table must check before altering.
MIGRATIONS = [
    (1, _v1_initial), (2, _v2_notifications), (3, _v3_notification_index), (4, _v4_money_operations),
    (5, _v5_api), (6, _v6_audit_index), (7, _v7_feed_index), (8, _v8_read_paths),
]


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

