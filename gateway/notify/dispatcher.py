"""Sends the outbox: claims due rows, sends each outside any transaction, records the outcome.

Exactly once across threads and processes: a row is claimed (QUEUED -> SENDING with a lease) in a
write transaction (BEGIN IMMEDIATE on SQLite, FOR UPDATE SKIP LOCKED on PostgreSQL); a send that
starts after half the lease is gone renews the claim first, so a send always starts with at least half
a lease ahead of it (one write transaction less per message in the common case); the outcome is
written only if the row is still claimed by this worker. A dispatcher that dies mid-send leaves a
SENDING row whose lease runs out; the next claim puts it back in the queue.

So each message reaches Africa's Talking once, except in one window: a process killed while the SDK call
is in flight, or after it returned and before the SENT commit, leaves a row it may already have sent; the
row goes out again after its lease (at least once there: AT has no idempotency key to ask with). Rows
claimed in the same batch but not yet being sent are simply sent later, once. The window is one SDK call
per sending thread, the commit follows the call at once, and nothing else runs in between.

SMS and webhooks run in separate lanes (gateway/notify/lanes.py): one thread claims only SMS, a pool of
``webhook_workers`` threads claims only webhooks, one row at a time, at most ``per_host`` to one host;
with an e-mail sender (LIPA_SMTP_URL), one more thread claims only e-mails. E-mail has the SMS window: a
process killed between the server's 250 to DATA and the SENT commit sends that mail again after the lease,
under the same Message-ID (derived from the row's dedupe key), which receiving servers may use to drop it.

A provider outage burns no message: failed sends back off (doubling, capped) and a message is given up
(FAILED, alert) only after ``max_attempts`` AND ``min_retry_s`` (an hour) since it was queued.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlsplit

from shared.db import UNAVAILABLE, close_quietly, db, retry_locked, skip_locked, write_tx
from shared.db.prepared import Prepared
from shared.mailaddr import mask_email
from shared.models import Notification
from shared.phone import mask_phone
from shared.timeutil import utcnow

from ..providers.africastalking import SmsPermanent, SmsRetryable
from ..providers.smtp import EmailPermanent, EmailRetryable
from ..providers.webhooks import WebhookPermanent, WebhookRetryable
from . import webhook_secrets
from .alerts import raise_alert
from .lanes import EMAIL_LANE, HOST_BUSY_S, SMS_LANE, WEBHOOK_LANE, HostGate, host_of, lane_filter

log = logging.getLogger(__name__)

QUEUED, SENDING, SENT, FAILED, SUPPRESSED = "QUEUED", "SENDING", "SENT", "FAILED", "SUPPRESSED"
PERMANENT = (SmsPermanent, WebhookPermanent, EmailPermanent)
RETRYABLE = (SmsRetryable, WebhookRetryable, EmailRetryable)
STOPPED_REASON = "dispatcher stopped while sending"
RETRY_WINDOW_S = 3600.0
ALERT_KIND = "notification_failed"


class UnsupportedChannel(SmsPermanent):
    """A row for a channel nobody sends (e.g. email before it exists): fail it, do not loop."""


def default_worker_id(obj) -> str:
    """host:pid:object, unique per Dispatcher instance and short enough for claimed_by."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{id(obj):x}"[:64]


def _where(row: Notification) -> str:
    """Who a row goes to, safe for logs and alerts: a masked phone or address, or the webhook's host."""
    if row.channel == "webhook":
        return urlsplit(row.recipient).netloc or "?"
    if row.channel == "email":
        return mask_email(row.recipient)
    return mask_phone(row.recipient)


_passes = threading.local()  # whether this thread's connection is the running pass's own


@contextlib.contextmanager
def _pass_connection():
    """The thread's connection for one pass of a lane. When the pass opened it (a lane or sender thread),
    _let_go may give it back during provider calls; a connection someone else opened (a job's, a test's)
    is theirs, held as it is."""
    if not db.is_closed():
        yield
        return
    _passes.own = True
    try:
        yield
    finally:
        _passes.own = False
        close_quietly()


def _let_go() -> None:
    """Give the pass's database connection back to the pool while a provider takes its time (a webhook may
    take its whole deadline): senders waiting on the network must not hold the connections requests need
    (LIPA_DB_POOL_MAX). The next statement takes one again (peewee connects on use), with no round trip."""
    if getattr(_passes, "own", False) and not db.is_closed() and not db.in_transaction():
        db.close()


def _by_recipient(rows: list[tuple[int, str]]) -> list[list[int]]:
    """Claimed (id, recipient hash) rows as one list of ids per recipient, each in queue order."""
    groups: dict[str, list[int]] = {}
    for row_id, recipient in rows:
        groups.setdefault(recipient, []).append(row_id)
    return list(groups.values())


# Every send reads its row (built once: see shared.db.prepared).
_BY_ID = Prepared(lambda p: Notification.select().where(Notification.id == p[0]), Notification.id)


class Dispatcher:
    """Sends queued notifications with retries and backoff; one background thread when started."""

    def __init__(self, *, sms, webhooks, email=None, enabled: bool = True, worker_id: str | None = None,
                 batch_size: int = 20, max_attempts: int = 8, base_backoff_s: float = 5.0,
                 max_backoff_s: float = 600.0, lease_s: float = 60.0, idle_wait_s: float = 5.0,
                 min_retry_s: float = RETRY_WINDOW_S, clock=utcnow, rng=random.random,
                 webhook_workers: int = 4, per_host: int = 2, sms_workers: int = 1):
        self.sms = sms
        self.webhooks = webhooks
        self.email = email  # gateway.notify.mail.MailOut, or None: no e-mail configured
        self.enabled = enabled
        self.worker_id = worker_id or default_worker_id(self)
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.min_retry = timedelta(seconds=min_retry_s)
        self.lease = timedelta(seconds=lease_s)
        self.idle_wait_s = idle_wait_s
        self.clock = clock
        self.rng = rng
        self.webhook_workers = webhook_workers
        self.sms_workers = max(1, sms_workers)
        self._senders: ThreadPoolExecutor | None = None  # the SMS lane's senders, while started
        self.hosts = HostGate(per_host)
        self._wakes: list[threading.Event] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None  # the SMS lane (every channel if webhook_workers is 0)
        self._other_threads: list[threading.Thread] = []  # the webhook lane's, and the e-mail lane's if any
        self._lock = threading.Lock()

    # --- claiming -------------------------------------------------------------------------------

    def claim(self, limit: int, lane: str | None = None) -> list[int]:
        """Take up to limit due rows of the lane for this worker (and re-queue rows whose sender died)."""
        return [row_id for row_id, _ in self._claim(limit, lane)]

    @retry_locked
    def _claim(self, limit: int, lane: str | None) -> list[tuple[int, str]]:
        """claim(), each id with its recipient's look-up hash (the SMS senders keep one phone's messages in order)."""
        now = self.clock()
        with write_tx():
            self._recover_expired(now)
            query = (Notification.select(Notification.id, Notification.recipient_hash)
                     .where((Notification.status == QUEUED) & (Notification.next_attempt_at <= now)
                            & lane_filter(Notification, lane))
                     .order_by(Notification.id).limit(limit))
            rows = [(row.id, str(row.recipient_hash)) for row in skip_locked(query)]
            ids = [row_id for row_id, _ in rows]
            if ids:
                Notification.update(
                    status=SENDING, claimed_by=self.worker_id, claim_expires_at=now + self.lease,
                    attempts=Notification.attempts + 1, updated_at=now,
                ).where(Notification.id.in_(ids) & (Notification.status == QUEUED)).execute()
        return rows

    def _recover_expired(self, now) -> None:
        """SENDING rows past their lease lost their dispatcher: queue them again, or give up."""
        stale = skip_locked(Notification.select().where(
            (Notification.status == SENDING) & (Notification.claim_expires_at < now)))
        for row in stale:
            if self._exhausted(row, now):
                reason = f"{STOPPED_REASON} ({row.attempts} attempts)"
                if self._cas(row, row.claimed_by, status=FAILED, failure_reason=reason, updated_at=now):
                    self._alert(row, reason)
                continue
            self._cas(row, row.claimed_by, status=QUEUED, claimed_by=None, claim_expires_at=None,
                      failure_reason=STOPPED_REASON, next_attempt_at=now, updated_at=now)
            log.warning("notification %d: %s; queued again", row.id, STOPPED_REASON)

    def _exhausted(self, row: Notification, now) -> bool:
        """Out of attempts, and retried for at least min_retry_s: an outage shorter than that loses nothing."""
        return row.attempts >= self.max_attempts and (not self.min_retry or now - row.created_at >= self.min_retry)

    @staticmethod
    def _cas(row: Notification, owner: str | None, **fields) -> bool:
        """Update the row only while it is SENDING and claimed by owner; True when it was."""
        return Notification.update(**fields).where(
            (Notification.id == row.id) & (Notification.status == SENDING) & (Notification.claimed_by == owner)
        ).execute() == 1

    @retry_locked
    def _renew(self, row_id: int) -> Notification | None:
        """Extend this worker's lease before a send that starts late in the batch; None when not ours."""
        with write_tx():
            row = self._own(row_id)
            if row is not None:
                self._cas(row, self.worker_id, claim_expires_at=self.clock() + self.lease)
            return row

    def _own(self, row_id: int) -> Notification | None:
        """The row while this worker still holds its claim (with more than half its lease left, no write is
        needed before sending); None if not ours."""
        row = _BY_ID.first(row_id)
        if row is None or row.status != SENDING or row.claimed_by != self.worker_id:
            return None
        return row

    # --- sending ---------------------------------------------------------------------------------

    def dispatch_once(self, limit: int | None = None, lane: str | None = None) -> int:
        """Claim and send one batch of the lane (None: every channel); returns how many rows were handled.
        Never raises for a row."""
        claimed_at = self.clock()
        senders = self._senders
        rows = self._claim(limit or self.batch_size, lane)
        if senders is None or lane == WEBHOOK_LANE or len(rows) < 2:
            return self._handle_all([row_id for row_id, _ in rows], claimed_at)
        return sum(senders.map(lambda ids: self._handle_all(ids, claimed_at), _by_recipient(rows)))

    def _handle_all(self, row_ids: list[int], claimed_at) -> int:
        """Send these rows one after the other (one phone's messages keep their order); never raises for a row."""
        handled = 0
        with _pass_connection():  # a sender thread's own connection (reused when already open)
            for row_id in row_ids:
                try:
                    handled += self._handle(row_id, claimed_at)
                except Exception:
                    log.exception("notification %d: unexpected error; left to its lease", row_id)
        return handled

    def recovery_pass(self) -> dict:
        """The dispatch-notifications job: with the lanes running, SMS only (a webhook, however slow, is
        the webhook pool's, never the job thread's) and the lanes woken; else every channel."""
        if not self.running:
            return {"handled": self.dispatch_once()}
        handled = self.dispatch_once(lane=SMS_LANE if self.webhook_workers > 0 else None)
        self.wake()
        return {"handled": handled}

    def _handle(self, row_id: int, claimed_at) -> int:
        """Send one claimed row and record the outcome; 0 when it was no longer ours."""
        row = self._renew(row_id) if self.clock() - claimed_at > self.lease / 2 else self._own(row_id)
        if row is None:
            log.warning("notification %d: claim lost before sending; skipped", row_id)
            return 0
        if row.channel == "sms" and not self.enabled:
            self._record(row, status=SUPPRESSED, failure_reason="SMS disabled")
            return 1
        if row.channel != "webhook":
            return self._attempt(row)
        host = host_of(row.recipient)
        if not self.hosts.enter(host):
            self._hand_back(row, host)
            return 1  # handled for now: the lane goes on to the next row
        try:
            return self._attempt(row)
        finally:
            self.hosts.leave(host)

    def _hand_back(self, row: Notification, host: str) -> None:
        """The host already has per_host attempts in flight: queue the row again, this attempt not counted."""
        self._record(row, status=QUEUED, attempts=Notification.attempts - 1, claim_expires_at=None,
                     next_attempt_at=self.clock() + timedelta(seconds=HOST_BUSY_S))
        log.info("notification %d: %s has %d webhooks in flight; later", row.id, host, self.hosts.per_host)

    def _attempt(self, row: Notification) -> int:
        """One send of a row this worker holds, and its outcome recorded."""
        try:
            fields = self._send(row)
        except PERMANENT as exc:
            self._give_up(row, exc.reason)
        except RETRYABLE as exc:
            self._retry_later(row, exc.reason)
        else:
            self._record(row, status=SENT, sent_at=self.clock(), failure_reason="", **fields)
            log.info("notification %d (%s) sent to %s", row.id, row.kind, _where(row))
        return 1

    def _send(self, row: Notification) -> dict:
        """Hand the row to its channel's sender; returns the columns to store on success."""
        if row.channel == "sms":
            _let_go()
            result = self.sms.send(row.recipient, row.body)
            message_id = result.message_id if result.message_id not in ("", "None") else None
            return {"provider_message_id": message_id, "provider_status": result.status[:40],
                    "cost": result.cost[:32]}
        if row.channel == "webhook":
            # the request's merchant's own secret(s), or None: the sender's LIPA_WEBHOOK_SECRET (issue 13)
            signers = webhook_secrets.for_notification(row, now=self.clock())
            _let_go()
            status = self.webhooks.send(row.recipient, row.body, secrets=signers)
            return {"provider_status": f"HTTP {status}"}
        if row.channel == "email" and self.email is not None:
            return self.email.send(row)
        raise UnsupportedChannel(f"no sender for channel {row.channel!r}")

    def _retry_later(self, row: Notification, reason: str) -> None:
        """Back off exponentially with jitter; give up after max_attempts and min_retry_s."""
        if self._exhausted(row, self.clock()):
            self._give_up(row, f"gave up after {row.attempts} attempts: {reason}")
            return
        delay = min(self.max_backoff_s, self.base_backoff_s * 2 ** max(row.attempts - 1, 0)) * (0.5 + self.rng())
        self._record(row, status=QUEUED, next_attempt_at=self.clock() + timedelta(seconds=delay),
                     claim_expires_at=None, failure_reason=reason[:255])
        log.info("notification %d to %s: %s; retry %d in %.1fs", row.id, _where(row), reason, row.attempts, delay)

    def _give_up(self, row: Notification, reason: str) -> None:
        """Mark the row FAILED and tell staff, in one transaction."""
        self._record(row, status=FAILED, failure_reason=reason[:255], alert=reason)

    @retry_locked
    def _record(self, row: Notification, *, alert: str | None = None, **fields) -> bool:
        """Write an outcome, only while the row is still claimed by this worker."""
        with write_tx():
            if not self._cas(row, self.worker_id, updated_at=self.clock(), **fields):
                log.warning("notification %d: claim lost while sending; outcome %s not recorded",
                            row.id, fields.get("status"))
                return False
            if alert:
                self._alert(row, alert)
        return True

    @staticmethod
    def _alert(row: Notification, reason: str) -> None:
        raise_alert(ALERT_KIND, f"{row.channel} {row.kind} #{row.id} to {_where(row)} failed: {reason}",
                    payment=row.payment_id)

    # --- background thread ---------------------------------------------------------------------

    def start(self) -> None:
        """Run the SMS lane on one daemon thread, which claims batches and sends each on ``sms_workers``
        sender threads, and the webhook lane on ``webhook_workers`` more (idempotent); with no webhook
        workers the SMS lane sends every channel.

        Several SMS senders because each send waits for Africa's Talking's answer (a few hundred ms from a
        data centre): one at a time, a lane sends a few receipts a second and a burst of payments waits
        minutes for theirs. One claim per batch still (one write transaction), and one phone's messages go
        out in the order they were queued (they share a sender)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self._wakes = []
            sms_lane = SMS_LANE if self.webhook_workers > 0 else None
            if self.sms_workers > 1:
                self._senders = ThreadPoolExecutor(self.sms_workers, thread_name_prefix="lipa-sms")
            self._thread = self._spawn("lipa-dispatcher", sms_lane, self.batch_size)
            self._other_threads = [self._spawn(f"lipa-webhooks-{n}", WEBHOOK_LANE, 1)
                                   for n in range(self.webhook_workers)]
            if self.email is not None and self.webhook_workers > 0:
                self._other_threads.append(self._spawn("lipa-mail", EMAIL_LANE, 1))

    def _spawn(self, name: str, lane: str | None, limit: int) -> threading.Thread:
        wake = threading.Event()
        wake.set()  # a first pass at once
        self._wakes.append(wake)
        thread = threading.Thread(target=self._run, args=(lane, limit, wake), name=name, daemon=True)
        thread.start()
        return thread

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Something was just committed to the outbox: every lane looks now rather than after the idle wait."""
        for wake in list(self._wakes):
            wake.set()

    def stop(self, timeout: float = 5) -> None:
        """Stop the lanes after their current row and join the threads (a webhook ends by its deadline)."""
        with self._lock:
            threads = [self._thread, *self._other_threads]
            self._thread, self._other_threads = None, []
            senders, self._senders = self._senders, None
        self._stopping.set()
        self.wake()
        end = time.monotonic() + timeout  # one timeout for all the lanes, not one each
        for thread in threads:
            if thread is not None:
                thread.join(max(0.0, end - time.monotonic()))
        if senders is not None:  # idle once the lane thread is done; else its rows are left to their lease
            senders.shutdown(wait=False, cancel_futures=True)

    def _run(self, lane: str | None, limit: int, wake: threading.Event) -> None:
        """Drain the lane, then sleep until woken or idle_wait_s passes (retries come due)."""
        while not self._stopping.is_set():
            wake.clear()
            try:
                with _pass_connection():
                    while not self._stopping.is_set() and self.dispatch_once(limit, lane):
                        pass
            except UNAVAILABLE as exc:  # the database is away: one line a pass, not a traceback
                log.error("dispatcher pass failed: database unavailable (%s); trying again after a pause",
                          type(exc).__name__)
            except Exception:
                log.exception("dispatcher pass failed; trying again after a pause")
            wake.wait(self.idle_wait_s)
