"""The state machine: every allowed transition works and records an event; every other one is refused."""
import itertools

import pytest

from gateway.payments.transitions import transition
from shared.privacy.crypto import lookup_hash
from shared.db import write_tx
from shared.errors import InvalidTransition
from shared.models import Payment, PaymentEvent
from shared.states import ACTIVE, TRANSITIONS, PaymentStatus, allowed_next, can_transition

ALL = list(PaymentStatus)
PAIRS = list(itertools.product(ALL, ALL))


def make_payment(status, n=0):
    return Payment.create(reference=f"LPTEST{n:03d}", phone="254712345678", amount=100,
                          account="ACC1", channel="api", status=status.value,
                          active_phone="254712345678" if status in ACTIVE else None)


@pytest.mark.parametrize("current,target", PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_every_pair(conn, current, target):
    payment = make_payment(current)
    allowed = target in TRANSITIONS[current]
    with write_tx():
        if allowed:
            event = transition(payment, target, actor="test", reason="because")
            assert (event.from_status, event.to_status, event.actor) == (current.value, target.value, "test")
        else:
            with pytest.raises(InvalidTransition):
                transition(payment, target, actor="test")
    fresh = Payment.get_by_id(payment.id)
    assert fresh.status == (target if allowed else current).value
    assert PaymentEvent.select().where(PaymentEvent.payment == payment).count() == (1 if allowed else 0)
    if allowed:
        assert fresh.active_phone == (lookup_hash("254712345678") if target in ACTIVE else None)  # stored hashed


def test_event_rolls_back_with_the_change(conn):
    payment = make_payment(PaymentStatus.PROCESSING)
    with pytest.raises(RuntimeError):
        with write_tx():
            transition(payment, PaymentStatus.COMPLETED, actor="test", mpesa_receipt="ABC123")
            raise RuntimeError("crash after the change")
    assert Payment.get_by_id(payment.id).status == "PROCESSING"
    assert PaymentEvent.select().count() == 0


def test_helpers_agree_with_the_table():
    for current, targets in TRANSITIONS.items():
        assert allowed_next(current.value) == sorted(t.value for t in targets)
        for target in ALL:
            assert can_transition(current.value, target.value) == (target in targets)
    assert TRANSITIONS[PaymentStatus.REFUNDED] == frozenset()


def test_completed_sets_completed_at_once(conn):
    payment = make_payment(PaymentStatus.PROCESSING)
    with write_tx():
        transition(payment, PaymentStatus.COMPLETED, actor="test")
    first = Payment.get_by_id(payment.id).completed_at
    assert first is not None
