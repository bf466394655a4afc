"""Inbox first: a provider message is committed raw before we answer, then applied idempotently."""
from __future__ import annotations

import logging

import peewee

from shared.db import for_update, one_statement_write, prepared, retry_locked, write_tx
from shared.db.prepared import Prepared
from shared.errors import InvalidInput
from shared.models import InboxMessage
from shared.timeutil import utcnow

MAX_BODY = 64 * 1024
log = logging.getLogger(__name__)


@retry_locked
def store(source: str, body: str, *, dedupe_key: str | None = None, remote_addr: str = "") -> tuple[InboxMessage, bool]:
    """Commit the raw message; returns (row, created). A repeated dedupe key returns the first row.

    Without a dedupe key (every STK callback: a re-send is stored too, and found applied by its batch) the
    store is one INSERT committed on its own, with no transaction around it (shared.db.one_statement_write)."""
    if not dedupe_key:
        with one_statement_write():
            row = prepared.create(InboxMessage, source=source, body=storable(body)[:MAX_BODY],
                                  remote_addr=remote_addr[:64])
        return row, True
    existing = InboxMessage.get_or_none(InboxMessage.dedupe_key == dedupe_key)
    if existing:
        return existing, False
    try:
        with write_tx():
            row = prepared.create(InboxMessage, source=source, body=storable(body)[:MAX_BODY],
                                  dedupe_key=dedupe_key, remote_addr=remote_addr[:64])
        return row, True
    except peewee.IntegrityError:
        return InboxMessage.get(InboxMessage.dedupe_key == dedupe_key), False


def open_row(inbox_id: int, parse):
    """Inside the caller's write transaction: (row, parsed body, None) for a row still to apply, or
    (row, None, status) when it was applied already or its body is unusable (then marked REJECTED)."""
    row = for_update(InboxMessage.select().where(InboxMessage.id == inbox_id)).get()
    if row.status != "RECEIVED":
        return row, None, row.status
    try:
        return row, parse(row.body), None
    except InvalidInput as exc:
        mark(row, "REJECTED", exc.message)
        return row, None, "REJECTED"


@retry_locked
def reject(inbox_id: int, reason: str) -> None:
    """A stored message that cannot be applied (its body is unusable): REJECTED, kept for inspection, never
    applied; one already handled keeps its status."""
    with write_tx():
        row = for_update(InboxMessage.select().where(InboxMessage.id == inbox_id)).get()
        if row.status == "RECEIVED":
            mark(row, "REJECTED", reason)


def storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL: keep it visible as an escape instead of failing to store."""
    return text.replace("\x00", "\\x00")


def mark(row: InboxMessage, status: str, note: str = "", payment=None) -> None:
    """Record how a message was applied; the caller holds the transaction."""
    row.status = status
    row.note = note[:255]
    row.processed_at = utcnow()
    if payment is not None:
        row.payment = payment
    _MARK.execute(row.status, row.note, row.processed_at, row.payment_id, row.id)
    row._dirty.clear()


# Every applied message runs it (built once: see shared.db.prepared).
_MARKED = (InboxMessage.status, InboxMessage.note, InboxMessage.processed_at, InboxMessage.payment)
_MARK = Prepared(lambda p: InboxMessage.update(dict(zip(_MARKED, p[:4], strict=True)))
                 .where(InboxMessage.id == p[4]), *_MARKED, InboxMessage.id)
