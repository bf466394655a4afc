"""Bulk SQL for reconciliation: settling many payments at once, and raw reads and writes of many rows.

Why a module of its own: a 100,000-line statement must not hold the write lock for minutes, so this code goes
around peewee's one-model-per-row path (settle_many instead of transition() per payment; one prepared INSERT
through executemany / execute_values instead of insert_many; plain tuples instead of model rows). Kept apart,
service.py stays about reconciling, and what must stay equivalent to transitions.transition() is in one place.
"""
from __future__ import annotations

import sqlite3
from datetime import datetime

from peewee import chunked

from shared.db import db, is_sqlite, locked
from shared.models import Payment, PaymentEvent, PhonePreference
from shared.privacy.crypto import unseal
from shared.timeutil import utcnow

from ..notify import outbox
from ..payments import transitions
from ..payments.transitions import transition
from ..texts.notify import render
from .common import ACTOR, S
from .matcher import Candidate

# Bound parameters per statement: SQLite before 3.32 takes 999, later ones 32766; PostgreSQL 65535.
PARAMS = 999 if sqlite3.sqlite_version_info < (3, 32) else 30_000
# Listeners whose reaction to SETTLED settle_many() reproduces (only "notify" has one).
BULK_SAFE_LISTENERS = frozenset({"requests", "notify", "flags", "email"})  # email reacts to COMPLETED only
CANDIDATE_FIELDS = (Payment.id, Payment.reference, Payment.phone, Payment.amount, Payment.account, Payment.status,
                    Payment.mpesa_receipt, Payment.created_at, Payment.completed_at)
EVENT_FIELDS = [PaymentEvent.payment, PaymentEvent.kind, PaymentEvent.from_status, PaymentEvent.to_status,
                PaymentEvent.actor, PaymentEvent.reason, PaymentEvent.created_at]


def settle_many(items: list[tuple[int, str]], *, config=None) -> int:
    """COMPLETED -> SETTLED for many payments at once: the bulk equivalent of transitions.transition().

    Why: transition() costs an UPDATE, an INSERT and the listeners per payment, which for a 100,000-line
    statement holds the write lock for minutes. Here each batch is one guarded UPDATE (only rows still
    COMPLETED), one multi-row INSERT of their PaymentEvents (every change still has its event, in the same
    transaction), and what the listeners do on SETTLED: only the notifier reacts (requests, flags and the
    receipt mailer look at COMPLETED and PROCESSING), and only with ``sms_on_settled`` on; then the SMS is
    queued here through outbox.enqueue, with the notifier's dedupe key. A listener this does not know sends
    every payment through transition() instead, so it is never bypassed.
    """
    if set(transitions.current_hooks().listeners) - BULK_SAFE_LISTENERS:
        return sum(_settle_one(payment_id, reason) for payment_id, reason in items)
    sms = _settled_sms_wanted(config)
    now, total = utcnow(), 0
    for batch in chunked(items, PARAMS):
        changed = _mark_settled([payment_id for payment_id, _ in batch], now)
        _insert_rows(PaymentEvent, EVENT_FIELDS, [
            (payment_id, "transition", S.COMPLETED.value, S.SETTLED.value, ACTOR, reason[:255], now)
            for payment_id, reason in batch if payment_id in changed])
        if sms and changed:
            _queue_settled_sms(changed, now)
        total += len(changed)
    return total


def _settle_one(payment_id: int, reason: str) -> int:
    payment = locked(Payment, payment_id)
    if payment.status != S.COMPLETED.value:
        return 0
    transition(payment, S.SETTLED, actor=ACTOR, reason=reason)
    return 1


def _mark_settled(ids: list[int], now) -> set[int]:
    """One UPDATE of the rows still COMPLETED; the ids it changed (SQLite before 3.35 has no RETURNING, but
    its write lock, taken before anything was read, means the statuses read are still the statuses)."""
    marks = ", ".join([db.obj.param] * len(ids))
    sql = (f'UPDATE "payment" SET "status" = {db.obj.param}, "active_phone" = NULL, "updated_at" = {db.obj.param} '
           f'WHERE "status" = {db.obj.param} AND "id" IN ({marks})')
    params = [S.SETTLED.value, now, S.COMPLETED.value, *ids]
    if is_sqlite() and sqlite3.sqlite_version_info < (3, 35):
        db.execute_sql(sql, params)
        return set(ids)
    return {row[0] for row in db.execute_sql(sql + ' RETURNING "id"', params)}


def _settled_sms_wanted(config) -> bool:
    """The config given, else the one the app's notifier was built with (no notifier: no SMS, as transition)."""
    if config is None:
        config = getattr(transitions.current_hooks().listeners.get("notify"), "config", None)
    return bool(getattr(config, "sms_on_settled", False))


def _queue_settled_sms(ids: set[int], now) -> None:
    """The payment_settled SMS, as the notifier would queue it (keyed by payment and event id)."""
    events = dict(PaymentEvent.select(PaymentEvent.payment, PaymentEvent.id).where(
        PaymentEvent.payment.in_(list(ids)), PaymentEvent.to_status == S.SETTLED.value,
        PaymentEvent.created_at == now, PaymentEvent.actor == ACTOR).tuples())
    payments = list(Payment.select().where(Payment.id.in_(list(ids)), Payment.phone_hash.is_null(False)))
    languages = dict(PhonePreference.select(PhonePreference.phone, PhonePreference.language).where(
        PhonePreference.phone_hash.in_([p.phone for p in payments])).tuples())
    for payment in payments:
        lang = languages.get(payment.phone) or payment.language or "en"
        text = render("payment_settled", lang, amount=payment.amount, account=payment.account,
                      ref=payment.reference, receipt=payment.mpesa_receipt or "")
        outbox.enqueue(channel="sms", kind="payment_settled", recipient=payment.phone, body=text, payment=payment,
                       language=lang, dedupe_key=f"sms:{payment.id}:{events[payment.id]}")


def _candidates(*where) -> list[Candidate]:
    """Payments as plain Candidates; raw rows, as building 100,000 model rows costs seconds. The phone is
    only used to match a line without a receipt, so it is unsealed only for the payments that may."""
    sql, params = Payment.select(*CANDIDATE_FIELDS).where(*where).sql()
    out = []
    for row in db.execute_sql(sql, params):
        cand = Candidate(*row[:7], _time(row[7]), _time(row[8]))
        cand.phone = unseal(cand.phone) if cand.phone and cand.fuzzy_eligible() else ""
        out.append(cand)
    return out


def _time(value):
    """SQLite hands back text; PostgreSQL a datetime."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _select_in(sql: str, values: list) -> list[tuple]:
    """Rows of ``sql`` (which ends in IN) for the values, in chunks of bound parameters."""
    rows: list[tuple] = []
    for chunk in chunked(values, PARAMS):
        rows.extend(db.execute_sql(f"{sql} ({', '.join([db.obj.param] * len(chunk))})", chunk).fetchall())
    return rows


def _insert_rows(model, fields: list, rows) -> None:
    """One prepared INSERT for many rows (peewee's insert_many spends seconds writing SQL for 100,000)."""
    rows = list(rows)
    if not rows:
        return
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    sql = f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES '
    cursor = db.cursor()
    if is_sqlite():
        cursor.executemany(sql + f"({', '.join('?' * len(fields))})", rows)
    else:
        from psycopg2.extras import execute_values

        execute_values(cursor, sql + "%s", rows, page_size=2000)
