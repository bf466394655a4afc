"""The one table of Daraja ResultCodes, row by row: through the STK callback and through the STK query of
expire-pending and the staff requery (the real client over HTTP against tests/daraja_fake.py). Undecided
answers leave the payment PROCESSING with no SMS until LIPA_STK_HARD_LIMIT_S, then EXPIRED."""
from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.jobs import sweeps
from gateway.providers.daraja.result_codes import CODES, lookup
from shared.models import Alert, Notification, Payment
from shared.timeutil import utcnow
from tests.conftest import QuietDispatcher
from tests.daraja_fake import QUERY, FakeDaraja
from tests.helpers import staff_headers
from tests.test_stk_callback import failed_body, make_payment, post
from tests.test_sweeps import age, fast_daraja

THROTTLES = [
    (500, {"requestId": "r", "errorCode": "500.001.1001", "errorMessage": "The transaction is being processed"}),
    (500, {"requestId": "r", "errorCode": "500.003.02", "errorMessage": "Spike arrest violation"}),
    (429, {"fault": {"faultstring": "Rate limit quota violation"}}), (429, "Too Many Requests"),
    (503, {"fault": {"faultstring": "Service unavailable"}}), (503, "Service Unavailable"),
]


@pytest.fixture
def fake():
    server = FakeDaraja(key="local-key", secret="local-secret")
    yield server
    server.stop()


@pytest.fixture
def gw(fake, make_app):
    return make_app(daraja=fast_daraja(fake.url), dispatcher=QuietDispatcher(),
                    config_overrides={"api_rate_limits": False})


@pytest.fixture
def app(gw):
    """``conn`` opens on this app: one app per test, and no simulators (the fake Daraja answers)."""
    return gw


def answer(code, desc="desc") -> tuple[int, dict]:
    return 200, {"ResponseCode": "0", "MerchantRequestID": "m", "CheckoutRequestID": "ws_CO_t",
                 "ResultCode": code, "ResultDesc": desc}


def waiting() -> Payment:
    return age(make_payment(checkout="ws_CO_t"), 130)


def sweep(gw, **kw) -> dict:
    lipa = gw.extensions["lipa"]
    return sweeps.expire_pending(daraja=lipa.daraja, config=lipa.config, sleep=lambda s: None, **kw)


@pytest.mark.parametrize("code", [c for c in CODES if c != "0"])
def test_every_code_in_a_callback(gw, conn, code):
    payment = make_payment()
    post(gw.test_client(), gw, failed_body(code))
    row, fresh = CODES[code], Payment.get_by_id(payment.id)
    assert fresh.status == (row.status.value if row.status else "PROCESSING")
    if not row.undecided:
        assert fresh.status_message == row.words


@pytest.mark.parametrize("code", list(CODES))
def test_every_code_from_the_stk_query(gw, fake, conn, code):
    payment = waiting()
    fake.queue(QUERY, *answer(code))
    sweep(gw)
    row, fresh = CODES[code], Payment.get_by_id(payment.id)
    assert fresh.status == (row.status.value if row.status else "PROCESSING")
    kinds = [n.kind for n in Notification.select()]
    assert kinds == ([] if row.undecided else [f"payment_{'confirmed' if code == '0' else row.outcome}"])
    assert Alert.select().where(Alert.kind == "unknown_result_code").exists() == row.alert


@pytest.mark.parametrize("reply", [answer("4999", "The transaction is still under processing"), answer("E3008"),
                                   answer("4242")] + THROTTLES)
def test_undecided_answers_wait_for_the_hard_limit_then_expire(gw, fake, conn, reply):
    payment = waiting()
    fake.queue(QUERY, *reply)
    assert sweep(gw)["left"] == 1
    assert Payment.get_by_id(payment.id).status == "PROCESSING" and Notification.select().count() == 0
    fake.queue(QUERY, *reply)
    later = utcnow() + timedelta(seconds=gw.extensions["lipa"].config.stk_hard_limit_s)
    assert sweep(gw, now=later)["expired"] == 1
    assert Payment.get_by_id(payment.id).status == "EXPIRED"
    assert [n.kind for n in Notification.select()] == ["payment_expired"]
    assert Alert.select().where(Alert.kind == "unknown_result_code").count() == (reply[1].get("ResultCode") in (
        "E3008", "4242") if isinstance(reply[1], dict) else 0)


def test_staff_requery_reads_4999_as_pending(gw, fake, conn):
    payment = waiting()
    fake.queue(QUERY, *answer("4999", "The transaction is still under processing"))
    heads = staff_headers(roles=("operator",))
    body = gw.test_client().post(f"/api/v1/payments/{payment.id}/requery", headers=heads["operator"]).get_json()
    assert body["query"]["pending"] is True and body["applied"] == "left"
    assert body["payment"]["status"] == "PROCESSING" and Notification.select().count() == 0


def test_an_unknown_code_is_undecided_and_alerted():
    row = lookup("  77777 ")
    assert (row.undecided, row.alert, row.status) == (True, True, None)
