"""STK callbacks applied in batches after their 200 (issue 15): store, answer, apply.

The view commits the raw body (one insert: the inbox-first guarantee) and answers Daraja at once; then it
kicks this process's drains, which claim stored callbacks a batch at a time and apply them in one write
transaction per batch. So a burst costs one commit per callback before the 200 and one per batch after it,
and a slow apply never delays an acknowledgement.

Exactly once across threads and processes: a batch claims RECEIVED rows with FOR UPDATE SKIP LOCKED on
PostgreSQL (concurrent drains split the queue), under BEGIN IMMEDIATE on SQLite (drains take turns), and
every applier re-checks inside the transaction (a re-sent callback finds its payment already moved). Within
a batch, callbacks are applied in CheckoutRequestID order, so two drains that hold callbacks for the same
payments lock those payments in the same order and never deadlock. A row whose apply fails stays RECEIVED
(the batch runs again with a savepoint per row, see apply_batch), is tried once more on its own, then by
the process-inbox job."""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.db import db, retry_locked, skip_locked, write_tx
from shared.errors import InvalidInput
from shared.models import InboxMessage, Payment

from ..ingest import inbox
from . import late_success
from .callbacks import PaymentHeld, apply_parsed, apply_stk_callback, parse_stk_callback

log = logging.getLogger(__name__)
SOURCE = "daraja.stk"
BATCH = 32  # a batch holds SQLite's write lock for about BATCH × 1.3 ms: short enough for the acks waiting
HELD_PAUSE_S = 0.005  # after a batch that left callbacks whose payment another batch held
HELD_TRIES = 200  # batches a held callback is left for (about a second at least), then applied on its own


@dataclass
class Batch:
    """What one batch did: how many rows it claimed, and the rows that need more after its commit."""

    claimed: int = 0
    failed: list[int] = field(default_factory=list)  # apply raised: left RECEIVED, tried again alone
    flagged: list[int] = field(default_factory=list)  # FLAGGED: a late success may wait for its STK query
    held: list[int] = field(default_factory=list)  # its payment was held by another batch: left RECEIVED


class _RowFailed(Exception):
    """A callback raised while its batch ran without savepoints: the batch is rolled back and run carefully."""


@retry_locked
def apply_batch(limit: int = BATCH, skip: frozenset[int] = frozenset()) -> Batch:
    """Claim up to ``limit`` stored STK callbacks (none of ``skip``) and apply them in one transaction.

    First without a savepoint per callback (two statements fewer each, the common case); if one of them
    raises, that whole transaction is rolled back and the batch runs again with a savepoint around each
    callback, so the one that fails is left RECEIVED and the others apply."""
    try:
        return _claim_and_apply(limit, skip, careful=False)
    except _RowFailed:
        return _claim_and_apply(limit, skip, careful=True)


def _claim_and_apply(limit: int, skip: frozenset[int], *, careful: bool) -> Batch:
    batch = Batch()
    with write_tx():
        query = InboxMessage.select().where(InboxMessage.source == SOURCE, InboxMessage.status == "RECEIVED")
        if skip:
            query = query.where(InboxMessage.id.not_in(sorted(skip)))
        rows = list(skip_locked(query.order_by(InboxMessage.id).limit(limit)))
        batch.claimed = len(rows)
        parsed = sorted(_parsed(rows), key=lambda pair: pair[1].checkout_request_id)
        payments = {} if careful else _lock_payments([result.checkout_request_id for _, result in parsed])
        for row, result in parsed:
            if careful:
                status = _apply_careful(row, result, batch)
            else:
                status = _apply_fast(row, result, batch, payments.get(result.checkout_request_id))
            if status == "FLAGGED":
                batch.flagged.append(row.id)
    return batch


def _lock_payments(checkout_ids: list[str]) -> dict:
    """The batch's payments in one statement, locked in CheckoutRequestID order, skipping any another
    transaction holds (those callbacks look theirs up alone, and are left for later if it is still held).
    One instance per payment, so a re-send later in the batch sees what the first callback changed. Only for
    a batch without savepoints: a savepoint rolled back would leave its instance changed."""
    if not checkout_ids:
        return {}
    query = Payment.select().where(Payment.checkout_request_id.in_(sorted(set(checkout_ids))))
    return {p.checkout_request_id: p for p in skip_locked(query.order_by(Payment.checkout_request_id))}


def _apply_fast(row, result, batch: Batch, payment=None) -> str | None:
    try:
        return apply_parsed(row, result, wait=False, payment=payment)
    except PaymentHeld:  # nothing written for it: left RECEIVED for a later batch
        batch.held.append(row.id)
        return None
    except Exception as exc:
        raise _RowFailed(row.id) from exc


def _apply_careful(row, result, batch: Batch) -> str | None:
    try:
        with db.atomic():  # a savepoint: one callback that fails leaves the others applied
            return apply_parsed(row, result, wait=False)
    except PaymentHeld:
        batch.held.append(row.id)
        return None
    except Exception:
        log.exception("stored STK callback %s could not be applied; tried again alone", row.id)
        batch.failed.append(row.id)
        return None


def _parsed(rows: list[InboxMessage]) -> list[tuple[InboxMessage, object]]:
    """Each row with its parsed body; an unusable body (the view checked it, so only a body stored by an
    older version or by hand) is marked REJECTED and never applied."""
    out = []
    for row in rows:
        try:
            out.append((row, parse_stk_callback(row.body)))
        except InvalidInput as exc:
            inbox.mark(row, "REJECTED", exc.message)
    return out


class CallbackDrain:
    """This process's drains of stored STK callbacks, run on the app's ``callbacks`` task lane.

    ``kick()`` is called after each stored callback's answer: it starts a drain while fewer than ``drains``
    run, or else tells the running ones to look again before they stop, so every committed row is claimed
    by some drain without one thread per callback. One drain on SQLite (one writer at a time: a second would
    only wait); on PostgreSQL several, since a batch spends most of its time waiting for the database's
    answers, and SKIP LOCKED splits the queue between them. ``wake`` wakes the dispatcher after each batch,
    so receipts go out while later batches apply."""

    def __init__(self, tasks, *, wake: Callable[[], None], daraja_of: Callable[[], object], batch: int = BATCH,
                 drains: int = 1):
        self._tasks = tasks
        self._wake = wake
        self._daraja_of = daraja_of
        self.batch = batch
        self.drains = drains
        self._lock = threading.Lock()
        self._running = 0
        self._again = False

    def kick(self) -> None:
        with self._lock:
            if self._running >= self.drains:
                self._again = True
                return
            self._running += 1
        try:
            self._tasks.submit_to("callbacks", self._drain)
        except RuntimeError:  # the pool is shut down (the app is stopping): process-inbox applies the rows
            self._stopped()

    def _drain(self) -> None:
        skip: set[int] = set()
        held: Counter[int] = Counter()
        try:
            while True:
                batch = apply_batch(self.batch, frozenset(skip))
                self._after(batch, skip)
                if batch.held:
                    self._left_held(batch.held, held, skip)
                    continue
                if batch.claimed < self.batch and self._stop():
                    return
        except BaseException:
            self._stopped()  # the next kick starts a drain again; process-inbox heals meanwhile
            raise

    def _stop(self) -> bool:
        """Stop, unless a callback was stored since the last claim: decided under the lock that kick() takes,
        so a kick either sees this drain still running (and it looks again) or starts the next one."""
        with self._lock:
            if self._again:
                self._again = False
                return False
            self._running -= 1
            return True

    def _stopped(self) -> None:
        with self._lock:
            self._running -= 1

    def _left_held(self, rows: list[int], held: Counter, skip: set[int]) -> None:
        """Callbacks whose payment another batch held go into a later batch of this drain, after a short
        pause (the holder commits within milliseconds); one held that long is applied on its own, waiting
        for the lock like a single callback does."""
        for row_id in rows:
            held[row_id] += 1
            if held[row_id] >= HELD_TRIES:
                skip.add(row_id)
                self._tasks.submit(apply_stk_callback, row_id)
        time.sleep(HELD_PAUSE_S)

    def _after(self, batch: Batch, skip: set[int]) -> None:
        """After the batch committed: receipts out, failed rows once more alone, late successes verified."""
        self._wake()
        for row_id in batch.failed:
            skip.add(row_id)
            self._tasks.submit(apply_stk_callback, row_id)
        for row_id in batch.flagged:
            late = late_success.pending_for_inbox(row_id)
            if late is not None:  # a success for a payment we gave up on: ask M-Pesa (expire-pending retries)
                self._tasks.submit(late_success.verify_soon, late.id, daraja=self._daraja_of())
