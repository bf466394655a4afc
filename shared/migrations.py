"""Versioned migrations. Each step runs once, in order, inside a transaction; the version is recorded."""
from __future__ import annotations

import logging

from . import models as m
from .db import db, is_sqlite, write_tx
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


# Append new steps; never edit or reorder a released one. Table creation uses the current model
# classes, so a step that adds columns to an existing table must check before altering.
MIGRATIONS = [(1, _v1_initial), (2, _v2_notifications), (3, _v3_notification_index)]


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

