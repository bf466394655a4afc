"""Fraud and velocity rules: they flag a payment for staff, never block it and never drop money."""
from __future__ import annotations

import functools
from datetime import timedelta

from peewee import Case, fn

from shared.db import for_update, write_tx
from shared.db.prepared import Prepared
from shared.errors import InvalidInput, NotFound
from shared.models import AuditLog, Payment, PaymentEvent
from shared.states import PaymentStatus
from shared.timeutil import utcnow

from .transitions import flag, record

ACTOR = "rules"
ALERT_KIND = "fraud_rule"
WRONG_PIN = "2001"
CHECKED_ON = (PaymentStatus.PROCESSING.value, PaymentStatus.COMPLETED.value)
# Back to COMPLETED after a failed refund or from settlement is not a new payment.
NOT_NEW_FROM = (PaymentStatus.SETTLED.value, PaymentStatus.REFUND_PENDING.value)


def listener(config):
    """The transition listener for app.py: ``hooks.add("flags", flags.listener(config))``."""
    return functools.partial(on_payment_change, config=config)


def on_payment_change(payment: Payment, from_status: str, to_status: str, event, *, config) -> None:
    """Check the rules when a payment reaches PROCESSING (push accepted) or COMPLETED (money in)."""
    if to_status in CHECKED_ON and from_status not in NOT_NEW_FROM:
        check_payment(payment, config)


def check_payment(payment: Payment, config) -> list[str]:
    """Flag each rule the payment breaks, once per rule; returns the rules flagged now."""
    flagged = []
    for rule, reason in _broken(payment, config):
        if not _already(payment, rule):
            flag(payment, f"rule {rule}: {reason}", actor=ACTOR, alert_kind=ALERT_KIND)
            flagged.append(rule)
    return flagged


def _broken(payment: Payment, config):
    """(rule, reason) for every rule that holds now."""
    if payment.amount > config.flag_amount_over:
        yield "amount", f"{payment.amount} KES is above {config.flag_amount_over}"
    payer = _same_payer(payment)
    if payer is None:
        return
    now = utcnow()
    recent, wrong_pins = (count or 0 for count in _COUNTS[payer[0]].row(
        payer[1], now - timedelta(hours=1), PaymentStatus.FAILED.value, WRONG_PIN, now - timedelta(hours=24)))
    if recent > config.flag_attempts_per_hour:
        yield "velocity", f"{recent} payments from this payer in the last hour (limit {config.flag_attempts_per_hour})"
    if wrong_pins >= config.flag_failed_pins:
        yield "failed_pins", f"{wrong_pins} wrong-PIN failures from this payer in 24 h"


def _same_payer(payment: Payment):
    """(look-up column, value): the payer's phone, or for a C2B that only sent a hash, that hash; None when
    neither is known."""
    if payment.phone:
        return "phone_hash", payment.phone
    if payment.payer_hash:
        return "payer_lookup", payment.payer_hash
    return None


def _counts(column) -> Prepared:
    """The payer's payments in the last hour and wrong-PIN failures in the last 24 h, in one statement that
    every COMPLETED or PROCESSING payment runs, built once (see shared.db.prepared): peewee took longer to
    build a COUNT's text than the database to answer it, and one round trip is half of two."""
    def build(p):
        in_hour = Case(None, [(Payment.created_at >= p[1], 1)], 0)
        wrong_pin = Case(None, [((Payment.status == p[2]) & (Payment.result_code == p[3]), 1)], 0)
        return Payment.select(fn.SUM(in_hour), fn.SUM(wrong_pin)).where(column == p[0], Payment.created_at >= p[4])

    return Prepared(build, column, Payment.created_at, Payment.status, Payment.result_code, Payment.created_at)


_COUNTS = {"phone_hash": _counts(Payment.phone_hash), "payer_lookup": _counts(Payment.payer_lookup)}


def _already(payment: Payment, rule: str) -> bool:
    return PaymentEvent.select().where(
        PaymentEvent.payment == payment, PaymentEvent.kind == "flag",
        PaymentEvent.reason.startswith(f"rule {rule}:")).exists()


REVIEW_ACTIONS = ("clear", "confirm")


def review_flag(payment_id: int, *, action, reason: str, actor: str) -> Payment:
    """Staff review a fraud flag: ``clear`` (a false alarm: flagged 0) or ``confirm`` (it stays flagged,
    marked confirmed). Both leave a ``flag_review`` event in the timeline and an audit row."""
    if action not in REVIEW_ACTIONS:
        raise InvalidInput("action must be clear or confirm.", code="invalid_action")
    with write_tx():
        payment = for_update(Payment.select().where(Payment.id == payment_id)).first()
        if payment is None:
            raise NotFound(f"There is no payment {payment_id}.")
        was = {"flagged": bool(payment.flagged), "flag_reason": payment.flag_reason}
        if action == "clear":
            payment.flagged, payment.flag_reason = False, ""
        else:
            payment.flagged = True
            payment.flag_reason = f"confirmed: {reason}"[:255]
        payment.updated_at = utcnow()
        payment.save()
        evidence = {"action": action, "by": actor, "reason": reason, "was": was}
        record(payment, "flag_review", actor=actor, reason=f"flag {action}ed: {reason}"[:255], payload=evidence)
        AuditLog.create(actor=actor, action=f"flag_{action}", target_type="payment", target_id=str(payment.id),
                        reason=reason[:500], details=evidence)
    return payment
