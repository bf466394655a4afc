"""payments.initiate / send_push / retry against the real Daraja client and the simulator over HTTP."""
import threading

import pytest
import requests

from gateway.payments.service import initiate, resolve_target, retry, send_push
from shared.errors import InvalidInput, NotAllowed
from shared.models import Payment, PaymentEvent, PaymentRequest
from shared.privacy.crypto import lookup_hash
from shared.timeutil import utcnow

PHONE = "0712345678"


@pytest.fixture
def app(app):
    """The simulators' app, its Daraja client retrying without waiting out the backoff (tests must not wait)."""
    app.extensions["lipa"].daraja._sleep = lambda s: None
    return app


def push(app, payment):
    services = app.extensions["lipa"]
    return send_push(payment.id, daraja=services.daraja, callback_url=services.stk_callback_url)


def fault(sim, **body):
    requests.post(f"{sim.daraja_url}/simulator/faults", json=body, timeout=5).raise_for_status()


def test_initiate_creates_pending_with_event(conn, app):
    payment = initiate(phone=PHONE, amount="500", account="acc42", channel="api")
    assert (payment.status, payment.phone, payment.amount, payment.account) == ("PENDING", "254712345678", 500, "ACC42")
    assert payment.reference.startswith("LP") and payment.active_phone == lookup_hash("254712345678")
    assert PaymentEvent.get(PaymentEvent.payment == payment).kind == "created"


@pytest.mark.parametrize("kwargs,code", [
    ({"phone": "12"}, "invalid_phone"), ({"amount": 0}, "amount_out_of_range"),
    ({"amount": 250_001}, "amount_out_of_range"), ({"amount": "1.5"}, "invalid_amount"),
    ({"account": "THIRTEENCHARS"}, "invalid_account"), ({"account": ""}, "invalid_account"),
    ({"account": "a b"}, "invalid_account"),
])
def test_initiate_refuses_bad_input(conn, app, kwargs, code):
    args = {"phone": PHONE, "amount": 100, "account": "A1", "channel": "api", **kwargs}
    with pytest.raises(InvalidInput) as info:
        initiate(**args)
    assert info.value.code == code
    assert Payment.select().count() == 0


def test_idempotency_key_returns_the_first(conn, app):
    first = initiate(phone=PHONE, amount=100, account="A1", channel="ussd", idempotency_key="ussd:s1")
    again = initiate(phone=PHONE, amount=100, account="A1", channel="ussd", idempotency_key="ussd:s1")
    assert first.id == again.id and Payment.select().count() == 1


def test_one_active_payment_per_phone(conn, app):
    first = initiate(phone=PHONE, amount=100, account="A1", channel="api")
    with pytest.raises(NotAllowed) as info:
        initiate(phone=PHONE, amount=200, account="A2", channel="api")
    assert first.reference in info.value.message and info.value.code == "payment_in_progress"


def test_concurrent_initiates_create_one(app, db_url):
    results, barrier = [], threading.Barrier(6)

    def attempt(i):
        from shared.db import db
        with db.connection_context():
            barrier.wait()
            try:
                results.append(initiate(phone=PHONE, amount=100 + i, account="A1", channel="api").id)
            except NotAllowed:
                results.append("busy")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("busy") == 5 and len(results) == 6
    from shared.db import db
    with db.connection_context():
        assert Payment.select().count() == 1


def test_push_accepted_moves_to_processing(conn, app, sim):
    payment = push(app, initiate(phone=PHONE, amount=100, account="A1", channel="api"))
    assert payment.status == "PROCESSING" and payment.checkout_request_id.startswith("ws_CO_")
    kinds = [e.kind for e in PaymentEvent.select().where(PaymentEvent.payment == payment).order_by(PaymentEvent.id)]
    assert kinds == ["created", "stk_request", "transition"]
    # a second send does nothing
    assert push(app, Payment.get_by_id(payment.id)).checkout_request_id == payment.checkout_request_id


@pytest.mark.parametrize("kind,words", [
    ("quota", ""), ("merchant", ""), ("internal", ""), ("spike_arrest", ""),
])
def test_push_refused_fails_with_reason(conn, app, sim, kind, words):
    fault(sim, stk_push=kind, count=10)
    payment = push(app, initiate(phone=PHONE, amount=100, account="A1", channel="api"))
    assert payment.status == "FAILED" and payment.status_message
    assert payment.active_phone is None


def test_spike_arrest_once_is_retried(conn, app, sim):
    fault(sim, stk_push="spike_arrest", count=1)
    payment = push(app, initiate(phone=PHONE, amount=100, account="A1", channel="api"))
    assert payment.status == "PROCESSING"


def test_garbage_answer_keeps_pending_with_reason(conn, app, sim):
    fault(sim, stk_push="garbage", count=1)
    payment = push(app, initiate(phone=PHONE, amount=100, account="A1", channel="api"))
    assert payment.status == "PENDING" and "checking" in payment.status_message
    assert PaymentEvent.select().where(PaymentEvent.kind == "stk_unknown").count() == 1


def test_daraja_down_fails_cleanly(make_app, conn):
    app = make_app(config_overrides={"mpesa_base_url": "http://127.0.0.1:9"})
    services = app.extensions["lipa"]
    services.daraja._sleep = lambda s: None  # retried without waiting out the backoff
    payment = initiate(phone=PHONE, amount=100, account="A1", channel="api")
    payment = send_push(payment.id, daraja=services.daraja, callback_url=services.stk_callback_url)
    assert payment.status == "FAILED" and payment.status_message


def test_retry_is_a_new_linked_payment(conn, app):
    first = initiate(phone=PHONE, amount=100, account="A1", channel="api")
    with pytest.raises(NotAllowed):
        retry(first, actor="staff:amina")
    Payment.update(status="FAILED", active_phone=None).where(Payment.id == first.id).execute()
    second = retry(Payment.get_by_id(first.id), actor="staff:amina")
    assert second.id != first.id and second.retry_of_id == first.id and second.status == "PENDING"


def test_resolve_target(conn, app):
    PaymentRequest.create(code="123456", amount=750, account="INV42", status="OPEN")
    PaymentRequest.create(code="222222", amount=10, account="INV43", status="PAID")
    PaymentRequest.create(code="333333", amount=10, account="INV44", status="OPEN",
                          expires_at=utcnow().replace(year=2000))
    target = resolve_target("123456")
    assert (target.account, target.amount) == ("INV42", 750)
    assert resolve_target("654321").account == "654321"
    for code in ("222222", "333333"):
        with pytest.raises(NotAllowed):
            resolve_target(code)
    with pytest.raises(InvalidInput):
        resolve_target("AB*1")


def test_concurrent_sends_push_once(app, sim, db_url):
    from shared.db import db
    with db.connection_context():
        payment = initiate(phone=PHONE, amount=100, account="A1", channel="api")
    barrier = threading.Barrier(4)

    def send():
        with db.connection_context():
            barrier.wait()
            push(app, payment)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pushes = requests.get(f"{sim.daraja_url}/simulator/requests", timeout=5).json()
    assert len(pushes) == 1
    with db.connection_context():
        assert Payment.get_by_id(payment.id).push_attempts == 1


def test_a_payment_is_pushed_at_most_once_even_after_a_re_read(conn, app, sim):
    payment = initiate(phone=PHONE, amount=100, account="A1", channel="api")
    Payment.update(push_attempts=1).where(Payment.id == payment.id).execute()  # someone else claimed it
    assert push(app, Payment.get_by_id(payment.id)).status == "PENDING"
    assert requests.get(f"{sim.daraja_url}/simulator/requests", timeout=5).json() == []
