"""Fraud and velocity rules: they flag a payment for staff, never block it and never drop money."""
from __future__ import annotations

import functools
from datetime import timedelta

from shared.models import Payment, PaymentEvent
from shared.states import PaymentStatus
from shared.timeutil import utcnow

from .transitions import flag

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
    recent = Payment.select().where(payer, Payment.created_at >= utcnow() - timedelta(hours=1)).count()
    if recent > config.flag_attempts_per_hour:
        yield "velocity", f"{recent} payments from this payer in the last hour (limit {config.flag_attempts_per_hour})"
    wrong_pins = Payment.select().where(
        payer, Payment.status == PaymentStatus.FAILED.value, Payment.result_code == WRONG_PIN,
        Payment.created_at >= utcnow() - timedelta(hours=24)).count()
    if wrong_pins >= config.flag_failed_pins:
        yield "failed_pins", f"{wrong_pins} wrong-PIN failures from this payer in 24 h"


def _same_payer(payment: Payment):
    """The payer's phone, or for a C2B that only sent a hash, that hash; None when neither is known."""
    if payment.phone:
        return Payment.phone_hash == payment.phone
    if payment.payer_hash:
        return Payment.payer_lookup == payment.payer_hash
    return None


def _already(payment: Payment, rule: str) -> bool:
    return PaymentEvent.select().where(
        PaymentEvent.payment == payment, PaymentEvent.kind == "flag",
        PaymentEvent.reason.startswith(f"rule {rule}:")).exists()
