"""The sweeps: settle payments whose result never came, alert staff about stuck ones, expire
payment requests, and trim working data. Plain functions with explicit arguments (tests call them).

Every payment change goes through payments.transition (actor "sweep") on a row locked and
re-read inside the transaction, so a callback that decided it first is never overruled, and the
customer's SMS is queued in the same transaction.

Retention: payments, payment events, refunds, alerts, notifications, the audit log and the
reconciliation rows are history and are kept at least 12 months; this module never deletes them.
Only working data goes after ``config.retention_days`` (30 by default): USSD sessions and inbox
rows already applied (a RECEIVED row still waits to be healed; a row an alert points at stays),
and job runs after 90 days.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from peewee import fn

from shared.db import for_update, locked, refresh_planner_stats, retry_locked, write_tx
from shared.models import (
    Alert,
    InboxMessage,
    JobRun,
    LateCallback,
    Payment,
    PaymentEvent,
    PaymentRequest,
    UssdSession,
)
from shared.states import ACTIVE, PaymentStatus, RequestStatus
from shared.timeutil import utcnow

from ..mpesa import late_success
from ..providers.daraja.client import StkQueryResult
from ..providers.daraja.errors import (
    STOP_POLLING, THROTTLED_HTTP, DarajaError, QuotaExceeded, SpikeArrest, stops_polling,
)
from ..providers.daraja.result_codes import UNKNOWN_KIND, is_success, lookup
from ..payments.requests import set_request_status
from ..payments.transitions import raise_alert, transition

log = logging.getLogger(__name__)
S = PaymentStatus
ACTOR = "sweep"
# Daraja as a whole is throttling us, slow or unreachable: stop this run, the next one carries on.
STOP_RUN = STOP_POLLING
# Daraja answered, but only "not now" (a throttle or an overload): as undecided as "still processing".
THROTTLED = (SpikeArrest, QuotaExceeded)
RECEIPT_PENDING = "confirmed by STK query; receipt pending"
NEVER_CONFIRMED = "M-Pesa never confirmed the request"
NEVER_SENT = "the M-Pesa prompt was never sent"
STUCK_KIND = "stuck_payment"
JOB_RUN_DAYS = 90
EXPIRE_COUNTS = ("queried", "completed", "cancelled", "failed", "expired", "left", "decided",
                 "unconfirmed", "never_sent") + late_success.COUNTS


def expire_pending(*, daraja, config, now=None, sleep=time.sleep, pause_s: float = 0.25,
                   limit: int = 50, budget_s: float = 120.0) -> dict:
    """Settle payments whose result never arrived: ask M-Pesa, and never guess when it cannot say.

    Queries go one at a time with ``pause_s`` between them; after ``budget_s`` (well inside the job's
    lease) or a throttled/unreachable Daraja, the rest are left for the next run."""
    now = now or utcnow()
    counts = dict.fromkeys(EXPIRE_COUNTS, 0)
    deadline = time.monotonic() + budget_s
    if _query_processing(daraja, config, now, counts, sleep, pause_s, limit, deadline):
        late_success.verify_due(daraja, counts, sleep=sleep, pause_s=pause_s, limit=limit, deadline=deadline)
    _settle_unpushed(config, now, counts, limit)
    return counts


def _query_processing(daraja, config, now, counts: dict, sleep, pause_s: float, limit: int, deadline) -> bool:
    """STK query each PROCESSING payment past the timeout, one at a time with a pause between; False when
    Daraja stopped the run (throttled, unreachable)."""
    cutoff = now - timedelta(seconds=config.stk_timeout_s)
    rows = list(Payment.select(Payment.id, Payment.checkout_request_id).where(
        Payment.status == S.PROCESSING.value, Payment.updated_at <= cutoff,
        Payment.checkout_request_id.is_null(False)).order_by(Payment.updated_at).limit(limit))
    for index, row in enumerate(rows):
        if index:
            if time.monotonic() > deadline:
                counts["left"] += len(rows) - index
                return False
            sleep(pause_s)
        counts["queried"] += 1
        try:
            answer = daraja.stk_query(row.checkout_request_id)
        except DarajaError as exc:
            if not _query_failed(row.id, exc, config, now, counts):
                log.warning("expire-pending: %s; %d payment(s) left for the next run", exc.message,
                            len(rows) - index - 1)
                counts["left"] += len(rows) - index - 1
                return False
            continue
        counts[apply_query(row.id, answer, config.stk_hard_limit_s, now)] += 1
    return True


def _query_failed(payment_id: int, exc: DarajaError, config, now, counts: dict) -> bool:
    """A throttled query is an undecided answer (EXPIRED past the hard limit); any other error leaves the
    payment for the next run. False when the run must stop."""
    undecided = undecided_answer(exc)
    if undecided is not None:
        counts[apply_query(payment_id, undecided, config.stk_hard_limit_s, now)] += 1
    else:
        log.warning("expire-pending: query for payment %d failed (%s); left for the next run", payment_id, exc.code)
        counts["left"] += 1
    return not stops_polling(exc)


def undecided_answer(exc: DarajaError) -> StkQueryResult | None:
    """The pending answer a throttle or overload stands for (HTTP 429, 503, spike arrest, quota), else None."""
    if not isinstance(exc, THROTTLED) and exc.daraja_status not in THROTTLED_HTTP:
        return None
    raw = {"error": exc.code, "errorCode": exc.error_code, "http_status": exc.daraja_status}
    return StkQueryResult(None, exc.message[:255], True, raw)


@retry_locked
def apply_query(payment_id: int, answer, hard_limit_s: int, now) -> str:
    """Apply one STK query answer to a PROCESSING payment; the counts key of what happened. An undecided
    answer (pending, 4999, a code not in result_codes) leaves it PROCESSING until the hard limit."""
    with write_tx():
        payment = locked(Payment, payment_id)
        if payment.status != S.PROCESSING.value:
            return "decided"  # a callback got there first: never overrule it
        row = lookup(answer.result_code) if answer.result_code is not None else None
        if answer.pending or row is None or row.undecided:
            return _undecided(payment, answer, row, hard_limit_s, now)
        code, desc = row.code, answer.result_desc[:255]
        if is_success(code):
            transition(payment, S.COMPLETED, actor=ACTOR, reason=RECEIPT_PENDING, payload=answer.raw,
                       message="Paid. The M-Pesa receipt number will follow.", result_code=code, result_desc=desc)
            return "completed"
        transition(payment, row.status, actor=ACTOR, reason=f"STK query {code}: {desc}", payload=answer.raw,
                   message=row.words, result_code=code, result_desc=desc)
        return row.status.value.lower()


def _undecided(payment: Payment, answer, row, hard_limit_s: int, now) -> str:
    """Still undecided: alert once about a code nobody documented; EXPIRED only past the hard limit."""
    if row is not None and row.alert and not Alert.select().where(
            Alert.payment == payment, Alert.kind == UNKNOWN_KIND).exists():
        raise_alert(UNKNOWN_KIND, f"{payment.reference}: STK query ResultCode {row.code} ({answer.result_desc[:80]})"
                    " is not a known decision; left PROCESSING", payment=payment)
    if payment.created_at > now - timedelta(seconds=hard_limit_s):
        return "left"
    transition(payment, S.EXPIRED, actor=ACTOR, payload=answer.raw,
               reason=f"no result within {hard_limit_s} s; the STK query still says processing"
                      f" ({answer.result_code or answer.result_desc[:60]})",
               message="M-Pesa did not confirm the payment in time.")
    return "expired"


def _settle_unpushed(config, now, counts: dict, limit: int) -> None:
    """PENDING payments with no CheckoutRequestID past the timeout: never pushed, or never confirmed."""
    cutoff = now - timedelta(seconds=config.stk_timeout_s)
    ids = [row.id for row in Payment.select(Payment.id).where(
        Payment.status == S.PENDING.value, Payment.checkout_request_id.is_null(),
        Payment.channel != "c2b", Payment.updated_at <= cutoff).order_by(Payment.updated_at).limit(limit)]
    for payment_id in ids:
        counts[_settle_one(payment_id, cutoff)] += 1


@retry_locked
def _settle_one(payment_id: int, cutoff) -> str:
    """EXPIRED when a push went out (its outcome is unknown; a late callback is verified by STK query),
    FAILED when none did (never pushed late: the customer has left the USSD session)."""
    with write_tx():
        payment = locked(Payment, payment_id)
        if payment.status != S.PENDING.value or payment.checkout_request_id or payment.updated_at > cutoff:
            return "decided"
        kinds = {e.kind for e in PaymentEvent.select(PaymentEvent.kind).where(PaymentEvent.payment == payment)}
        if kinds & {"stk_request", "stk_unknown"}:
            transition(payment, S.EXPIRED, actor=ACTOR, reason=NEVER_CONFIRMED,
                       message="M-Pesa never confirmed the request. If you paid, it will be credited.")
            return "unconfirmed"
        transition(payment, S.FAILED, actor=ACTOR, reason=NEVER_SENT,
                   message="The M-Pesa prompt was never sent. Please try again.")
        return "never_sent"


def stuck_payments(*, config, now=None, limit: int = 200) -> dict:
    """One alert per stuck spell: not again while an alert is open or nothing changed since the last one."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=config.stuck_after_s)
    active = [s.value for s in ACTIVE]
    already = fn.EXISTS(Alert.select(Alert.id).where(
        Alert.payment == Payment.id, Alert.kind == STUCK_KIND,
        (Alert.acknowledged == False) | (Alert.created_at >= Payment.updated_at)))  # noqa: E712 - SQL
    rows = list(Payment.select().where(
        (Payment.status.in_(active) & (Payment.created_at <= cutoff))
        | ((Payment.status == S.REFUND_PENDING.value) & (Payment.updated_at <= cutoff)),
        ~already).order_by(Payment.id).limit(limit))
    for payment in rows:
        _alert_stuck(payment, config.stuck_after_s)
    return {"alerted": len(rows)}


@retry_locked
def _alert_stuck(payment: Payment, stuck_after_s: int) -> None:
    with write_tx():
        minutes = max(1, stuck_after_s // 60)
        raise_alert(STUCK_KIND, f"{payment.reference} has been {payment.status} for over {minutes} min",
                    payment=payment)


def expire_requests(*, now=None, limit: int = 500) -> dict:
    """OPEN payment requests past expires_at become EXPIRED; one being paid right now waits for its payment."""
    now = now or utcnow()
    ids = [row.id for row in PaymentRequest.select(PaymentRequest.id).where(
        PaymentRequest.status == RequestStatus.OPEN.value, PaymentRequest.expires_at.is_null(False),
        PaymentRequest.expires_at <= now).order_by(PaymentRequest.expires_at).limit(limit)]
    counts = {"expired": 0, "waiting": 0, "decided": 0}
    for request_id in ids:
        counts[_expire_request(request_id, now)] += 1
    return counts


@retry_locked
def _expire_request(request_id: int, now) -> str:
    with write_tx():
        req = for_update(PaymentRequest.select().where(PaymentRequest.id == request_id)).get()
        if req.status != RequestStatus.OPEN.value or req.expires_at is None or req.expires_at > now:
            return "decided"
        if Payment.select().where(Payment.request == req, Payment.status.in_([s.value for s in ACTIVE])).exists():
            return "waiting"  # expiring now would turn the customer's money into an "unexpected" payment
        set_request_status(req, RequestStatus.EXPIRED)
        return "expired"


def retention(*, config, now=None, batch: int = 1000, max_batches: int = 100) -> dict:
    """Delete working data past its time, in small transactions; never payments or their history."""
    now = now or utcnow()
    cutoff = now - timedelta(days=config.retention_days)
    alerted = Alert.select(Alert.inbox).where(Alert.inbox.is_null(False))
    held = LateCallback.select(LateCallback.inbox)  # a late success callback is evidence: kept
    counts = {
        "ussd_sessions": _purge(UssdSession, UssdSession.updated_at < cutoff, batch, max_batches),
        "inbox_messages": _purge(InboxMessage, (InboxMessage.status != "RECEIVED")
                                 & (InboxMessage.received_at < cutoff) & InboxMessage.id.not_in(alerted)
                                 & InboxMessage.id.not_in(held), batch, max_batches),
        "job_runs": _purge(JobRun, JobRun.started_at < now - timedelta(days=JOB_RUN_DAYS), batch, max_batches),
    }
    refresh_planner_stats()  # the tables grew since yesterday: keep the SQLite planner's statistics current
    return counts


def _purge(model, where, batch: int, max_batches: int) -> int:
    """Delete matching rows a batch at a time, so no transaction holds the write lock for long."""
    total = 0
    for _ in range(max_batches):
        with write_tx():
            ids = [row.id for row in model.select(model.id).where(where).order_by(model.id).limit(batch)]
            if ids:
                total += model.delete().where(model.id.in_(ids)).execute()
        if len(ids) < batch:
            break
    if total:
        log.info("retention: deleted %d %s row(s)", total, model._meta.table_name)
    return total
