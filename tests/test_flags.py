"""Fraud and velocity rules flag once per rule per payment, and never stop the money."""
import hashlib
import itertools
from datetime import timedelta

import pytest

from gateway.payments.flags import check_payment
from gateway.payments.transitions import transition
from shared.db import write_tx
from shared.models import Alert, Payment, PaymentEvent
from shared.timeutil import utcnow
from tests import test_c2b
from tests.factories import c2b_body, confirm
from tests.factories import PHONE, make_payment, paid_body, post

build = test_c2b.build  # the wired-app fixture, shared

HASH = hashlib.sha256(PHONE.encode()).hexdigest()
_refs = itertools.count()


def rule_flags(payment) -> list[str]:
    return [e.reason.split(":")[0] for e in PaymentEvent.select().where(
        PaymentEvent.payment == payment, PaymentEvent.kind == "flag").order_by(PaymentEvent.id)]


def history(n, *, status="COMPLETED", hours_ago=0.1, phone=PHONE, **kw):
    """n earlier payments from the phone, created hours_ago."""
    for _ in range(n):
        make_payment(status=status, checkout=None, ref=f"LPOLD{next(_refs):04d}", phone=phone,
                     created_at=utcnow() - timedelta(hours=hours_ago), **kw)


def test_amount_over_limit_flags_once_and_money_is_kept(build):
    app = build(flag_amount_over=1000)
    confirm(app, c2b_body(TransAmount="5000.00"))
    payment = Payment.get()
    assert payment.status == "COMPLETED" and payment.flagged and rule_flags(payment) == ["rule amount"]
    assert Alert.get().kind == "fraud_rule"
    assert check_payment(payment, app.extensions["lipa"].config) == []
    assert rule_flags(payment) == ["rule amount"]


def test_velocity_counts_the_last_hour_only(build):
    app = build(flag_attempts_per_hour=2)
    history(2, hours_ago=0.5)
    history(5, hours_ago=2, phone=PHONE)  # older than an hour: not counted
    confirm(app, c2b_body(MSISDN=PHONE, TransID="VEL0000001"))
    payment = Payment.get(Payment.mpesa_receipt == "VEL0000001")
    assert payment.status == "COMPLETED" and rule_flags(payment) == ["rule velocity"]
    assert "3 payments" in payment.flag_reason


def test_velocity_for_a_hash_only_payer(build):
    app = build(flag_attempts_per_hour=1)
    confirm(app, c2b_body(MSISDN=HASH, TransID="HASH000001", BillRefNumber="A1"))
    confirm(app, c2b_body(MSISDN=HASH, TransID="HASH000002", BillRefNumber="A2"))
    first, second = Payment.select().order_by(Payment.id)
    assert rule_flags(first) == [] and rule_flags(second) == ["rule velocity"]


def test_failed_pins_in_the_last_day(build):
    app = build(flag_failed_pins=3)
    history(2, status="FAILED", result_code="2001")
    history(1, status="FAILED", result_code="1032")  # cancelled by the customer, not a wrong PIN
    history(3, status="FAILED", result_code="2001", hours_ago=30, phone=PHONE)
    confirm(app, c2b_body(MSISDN=PHONE, TransID="PIN0000001"))
    assert rule_flags(Payment.get(Payment.mpesa_receipt == "PIN0000001")) == []
    make_payment(status="FAILED", checkout=None, ref="LPPIN0003", result_code="2001")
    confirm(app, c2b_body(MSISDN=PHONE, TransID="PIN0000002"))
    payment = Payment.get(Payment.mpesa_receipt == "PIN0000002")
    assert payment.status == "COMPLETED" and rule_flags(payment) == ["rule failed_pins"]


def test_stk_payment_is_checked_on_processing_and_completed_but_flagged_once(build):
    app = build(flag_amount_over=100)
    payment = make_payment(status="PENDING", amount=500)
    with write_tx():
        transition(payment, "PROCESSING", actor="test", checkout_request_id="ws_CO_191220191020363925")
    assert rule_flags(payment) == ["rule amount"]
    post(app.test_client(), app, paid_body())
    fresh = Payment.get_by_id(payment.id)
    assert fresh.status == "COMPLETED" and rule_flags(fresh) == ["rule amount"]
    assert Alert.select().where(Alert.kind == "fraud_rule").count() == 1


@pytest.mark.parametrize("overrides", [{}, {"flag_amount_over": 10, "flag_attempts_per_hour": 1}])
def test_below_the_limits_nothing_is_flagged(build, overrides):
    app = build(**overrides)
    confirm(app, c2b_body(MSISDN=PHONE))
    payment = Payment.get()
    assert payment.status == "COMPLETED" and not payment.flagged and Alert.select().count() == 0


def test_several_rules_flag_one_payment(build):
    app = build(flag_amount_over=5, flag_attempts_per_hour=1, flag_failed_pins=1)
    history(1, status="FAILED", result_code="2001")
    confirm(app, c2b_body(MSISDN=PHONE))
    payment = Payment.get(Payment.channel == "c2b")
    assert sorted(rule_flags(payment)) == ["rule amount", "rule failed_pins", "rule velocity"]
    assert Alert.select().where(Alert.kind == "fraud_rule").count() == 3
