"""The live feed: payment events, alerts and notification changes after a cursor, oldest first; long-poll.

Flask-free. The cursor is one position per source, base64 of ``p<event id>.a<alert id>.n<updated_at>|<id>``
(notifications change in place, so they are followed by (updated_at, id)). A page merges the three
sources by time and moves each position only past the items it returns, so nothing is missed or repeated.

Ids come from sequences: a transaction can commit after a later one (PostgreSQL). A young gap in the ids
is therefore waited on for up to ``GAP_WAIT_S`` before the feed moves past it, and on PostgreSQL a
notification change is shown once it is ``SETTLE_S`` old. Both stay well inside the 2-second promise.
"""
from __future__ import annotations

import base64
import heapq
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.db import db, is_sqlite
from shared.errors import InvalidInput
from shared.models import Alert, Notification, Payment, PaymentEvent
from shared.timeutil import iso, utcnow

GAP_WAIT_S = 1.0
SETTLE_S = 0.3
POLL_S = 0.25
MAX_WAIT_S = 25
STOPPING = threading.Event()  # set at shutdown: waiting requests answer at once


@dataclass(frozen=True)
class Cursor:
    """Where a reader is in each source."""

    event: int = 0
    alert: int = 0
    note_at: datetime | None = None
    note_id: int = 0


def encode(cursor: Cursor) -> str:
    note_at = cursor.note_at.isoformat() if cursor.note_at else ""
    text = f"p{cursor.event}.a{cursor.alert}.n{note_at}|{cursor.note_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(raw: str | None) -> Cursor:
    """The cursor a previous page gave; empty means the beginning; anything else is a 400."""
    if not raw:
        return Cursor()
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        event, alert, note = text.split(".", 2)
        note_at, note_id = note.split("|")
        if event[0] != "p" or alert[0] != "a" or note_at[0] != "n":
            raise ValueError
        at = datetime.fromisoformat(note_at[1:]) if note_at[1:] else None
        if at is not None and at.tzinfo is not None:
            raise ValueError
        return Cursor(_count(event[1:]), _count(alert[1:]), at, _count(note_id))
    except (ValueError, IndexError, UnicodeDecodeError):
        raise InvalidInput("after is not a cursor of this feed.", code="invalid_cursor") from None


def _count(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise ValueError(text)
    return int(text)


def tail() -> Cursor:
    """The position just after everything that exists now (``after=now``)."""
    last = (Notification.select(Notification.updated_at, Notification.id)
            .order_by(Notification.updated_at.desc(), Notification.id.desc()).first())
    return Cursor(
        event=PaymentEvent.select(PaymentEvent.id).order_by(PaymentEvent.id.desc()).scalar() or 0,
        alert=Alert.select(Alert.id).order_by(Alert.id.desc()).scalar() or 0,
        note_at=last.updated_at if last else None, note_id=last.id if last else 0,
    )


def page(cursor: Cursor, limit: int = 100, *, now: datetime | None = None) -> tuple[list[dict], Cursor]:
    """Up to ``limit`` items after the cursor, oldest first, and the cursor to continue from."""
    now = now or utcnow()
    sources = (_events(cursor, limit, now), _alerts(cursor, limit, now), _notes(cursor, limit, now))
    merged = heapq.merge(*sources, key=lambda entry: entry[0])
    items = []
    for _, item in merged:
        if len(items) == limit:
            break
        items.append(item)
        cursor = _advance(cursor, item)
    return items, cursor


def _advance(cursor: Cursor, item: dict) -> Cursor:
    if item["type"] == "payment_event":
        return replace(cursor, event=item["id"])
    if item["type"] == "alert":
        return replace(cursor, alert=item["id"])
    return replace(cursor, note_at=item.pop("_at"), note_id=item["id"])


def _contiguous(rows: list, after: int, now: datetime) -> list:
    """The rows up to the first young gap in the ids (a transaction that may still commit)."""
    kept, previous = [], after
    for row in rows:
        if row.id != previous + 1 and now - row.created_at < timedelta(seconds=GAP_WAIT_S):
            break
        kept.append(row)
        previous = row.id
    return kept


def _events(cursor: Cursor, limit: int, now: datetime):
    # Not the sealed payload: the feed never shows it, and unsealing costs ~10 us a row. Payment.id is selected
    # too: without it the joined Payment has no id and payment_id reads None (the desktop follows rows by it).
    rows = list(PaymentEvent.select(PaymentEvent.id, PaymentEvent.payment, PaymentEvent.kind, PaymentEvent.from_status,
                                    PaymentEvent.to_status, PaymentEvent.actor, PaymentEvent.created_at,
                                    Payment.id, Payment.reference, Payment.status)
                .join(Payment).where(PaymentEvent.id > cursor.event).order_by(PaymentEvent.id).limit(limit))
    for e in _contiguous(rows, cursor.event, now):
        yield (e.created_at, 0, e.id), {
            "type": "payment_event", "id": e.id, "at": iso(e.created_at), "payment_id": e.payment_id,
            "reference": e.payment.reference, "status": e.payment.status, "kind": e.kind,
            "from_status": e.from_status, "to_status": e.to_status, "actor": e.actor,
        }


def _alerts(cursor: Cursor, limit: int, now: datetime):
    rows = list(Alert.select().where(Alert.id > cursor.alert).order_by(Alert.id).limit(limit))
    for a in _contiguous(rows, cursor.alert, now):
        yield (a.created_at, 1, a.id), {
            "type": "alert", "id": a.id, "at": iso(a.created_at), "kind": a.kind, "message": a.message,
            "payment_id": a.payment_id, "acknowledged": bool(a.acknowledged),
        }


def _notes(cursor: Cursor, limit: int, now: datetime):
    query = Notification.select(  # not the sealed recipient and body, which the feed never shows
        Notification.id, Notification.updated_at, Notification.status, Notification.kind, Notification.channel,
        Notification.payment).order_by(Notification.updated_at, Notification.id).limit(limit)
    if cursor.note_at is not None:
        query = query.where((Notification.updated_at > cursor.note_at) | (
            (Notification.updated_at == cursor.note_at) & (Notification.id > cursor.note_id)))
    if not is_sqlite():  # SQLite writers are serialised; PostgreSQL ones may commit out of order
        query = query.where(Notification.updated_at <= now - timedelta(seconds=SETTLE_S))
    for n in query:
        yield (n.updated_at, 2, n.id), {
            "type": "notification", "id": n.id, "at": iso(n.updated_at), "status": n.status, "kind": n.kind,
            "channel": n.channel, "payment_id": n.payment_id, "_at": n.updated_at,
        }


def wait_for_items(cursor: Cursor, *, limit: int = 100, wait: float = 0, release: bool = False,
                   interval: float = POLL_S, clock=time.monotonic) -> tuple[list[dict], Cursor]:
    """A page, waiting up to ``wait`` seconds for its first item; between polls the connection is
    given back when ``release`` (the caller opened it with connect(), not connection_context()), so a
    waiting reader holds no database slot."""
    deadline = clock() + min(wait, MAX_WAIT_S)
    while True:
        items, after = page(cursor, limit)
        left = deadline - clock()
        if items or left <= 0 or STOPPING.is_set():
            return items, after
        if release and not db.is_closed() and not db.in_transaction():
            db.close()
        STOPPING.wait(min(interval, left))


def ranked_page(query, rank, id_field, cursor: str | None, limit: int) -> tuple[list, str | None]:
    """A keyset page ordered by (rank, id newest first), e.g. unacknowledged alerts first; rank None
    orders by id alone. Returns the rows and the cursor of the next page (None at the end)."""
    after = _decode_ranked(cursor)
    if rank is None:
        order = [id_field.desc()]
        if after is not None:
            query = query.where(id_field < after[1])
    else:
        order = [rank, id_field.desc()]
        query = query.select_extend(rank.alias("page_rank"))
        if after is not None:
            query = query.where((rank > after[0]) | ((rank == after[0]) & (id_field < after[1])))
    rows = list(query.order_by(*order).limit(limit + 1))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, _encode_ranked(int(getattr(rows[-1], "page_rank", 0) or 0), rows[-1].id)


def _encode_ranked(rank: int, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"r{rank}:{last_id}".encode()).decode().rstrip("=")


def _decode_ranked(raw: str | None) -> tuple[int, int] | None:
    if not raw:
        return None
    try:
        rank, last = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode().split(":")
        if rank[0] != "r":
            raise ValueError
        return _count(rank[1:]), _count(last)
    except (ValueError, IndexError, UnicodeDecodeError):
        raise InvalidInput("cursor is not valid.", code="invalid_cursor") from None
