"""A success callback after FAILED/EXPIRED completes the payment only when M-Pesa's STK query says paid; it is
kept and retried by expire-pending while Daraja is down (the Daraja simulator as Daraja)."""
from __future__ import annotations

from gateway.jobs import sweeps
from shared.models import InboxMessage, LateCallback, Payment
from tests.test_stk_callback import paid_body, post
from tests.test_sweeps import DEAD_URL, fast_daraja, gw, pushed, services, sweep  # noqa: F401 - fixtures


def test_kept_and_retried_while_daraja_is_down_then_completed(gw, services, sim):  # noqa: F811
    payment = pushed(services, sim, amount=55, outcome="insufficient")
    assert sweep(services)["failed"] == 1
    sim.daraja.find(payment.checkout_request_id).outcome = "paid"  # M-Pesa took the money after all
    real = services.daraja
    services.daraja = fast_daraja(DEAD_URL)
    post(gw.test_client(), gw, paid_body(amount=55, receipt="LATEDOWN01", checkout=payment.checkout_request_id))
    assert Payment.get_by_id(payment.id).status == "FAILED"
    assert sweep(services)["late_left"] == 1
    late = LateCallback.get()
    assert (late.status, late.attempts) == ("TO_VERIFY", 2) and "daraja_unavailable" in late.last_answer
    services.daraja = real
    assert sweep(services)["late_confirmed"] == 1
    done = Payment.get_by_id(payment.id)
    assert (done.status, done.mpesa_receipt, done.flagged) == ("COMPLETED", "LATEDOWN01", True)
    assert InboxMessage.get().status == "APPLIED" and LateCallback.get().status == "CONFIRMED"
    assert sweep(services)["late_confirmed"] == 0


def test_contradicted_by_the_query_stays_failed(gw, services, sim):  # noqa: F811
    payment = pushed(services, sim, amount=55, outcome="insufficient")
    sweep(services)
    post(gw.test_client(), gw, paid_body(amount=55, receipt="FORGED0002", checkout=payment.checkout_request_id))
    assert Payment.get_by_id(payment.id).status == "FAILED"
    assert LateCallback.get().status == "CONTRADICTED" and "STK query says 1" in LateCallback.get().last_answer
    assert sweeps.expire_pending(daraja=services.daraja, config=services.config)["late_confirmed"] == 0
