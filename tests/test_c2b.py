"""C2B: validation decides in milliseconds; confirmations are stored, answered and applied idempotently."""
import hashlib
import json
from datetime import timedelta

import pytest

from gateway.mpesa.c2b import apply_c2b
from gateway.payments.requests import create_request, set_request_status
from gateway.providers.daraja.c2b_register import REGISTER_PATH, c2b_urls, register_c2b_urls
from gateway.providers.daraja.client import DarajaClient
from gateway.providers.daraja.errors import DarajaBadResponse
from gateway.providers.daraja.token_store import MemoryTokenStore
from shared.db import db, write_tx
from shared.errors import InvalidInput
from shared.models import Alert, AuditLog, InboxMessage, Notification, Payment, PaymentEvent, PaymentRequest
from shared.timeutil import utcnow
from tests.conftest import fixture_json
from tests.daraja_fake import FakeDaraja
from tests.factories import CONFIRMATION, VALIDATION, c2b_body, confirm  # noqa: F401 - builders shared
from tests.factories import PHONE, make_payment, paid_body, post

FIXTURE_HASH = fixture_json("c2b_confirmation.json")["MSISDN"]




@pytest.fixture
def build(make_app):
    """A gateway (C2B routes, flag rules and unexpected-money config are wired by create_app)."""

    def factory(**overrides):
        app = make_app(config_overrides=overrides)
        db.connect(reuse_if_open=True)
        return app

    yield factory
    if not db.is_closed():
        db.close()


@pytest.fixture
def lipa(build):
    return build()




def validate(app, body):
    return post(app.test_client(), app, body, url=VALIDATION)


def open_request(amount=500, **kw) -> PaymentRequest:
    return create_request(amount=amount, account="INV42", **kw)


# --- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("changes,code", [
    ({}, "0"),
    ({"BillRefNumber": "ACC-42", "TransAmount": "250000.00"}, "0"),
    ({"MSISDN": "0712345678", "BillRefNumber": 12345}, "0"),
    ({"MSISDN": 254708374149}, "0"),
    ({"MSISDN": "2547 ***** 126"}, "0"),
    ({"MSISDN": "hello"}, "C2B00011"),
    ({"MSISDN": None}, "C2B00011"),
    ({"BillRefNumber": "bad account!"}, "C2B00012"),
    ({"BillRefNumber": ""}, "C2B00012"),
    ({"BillRefNumber": "A" * 21}, "C2B00012"),
    ({"TransAmount": "10.50"}, "C2B00013"),
    ({"TransAmount": "-5.00"}, "C2B00013"),
    ({"TransAmount": "0"}, "C2B00013"),
    ({"TransAmount": "250001.00"}, "C2B00013"),
    ({"TransAmount": "lots"}, "C2B00013"),
    ({"TransAmount": None}, "C2B00013"),
])
def test_validation_free_account_matrix(lipa, changes, code):
    response = validate(lipa, c2b_body(**changes))
    assert response.status_code == 200
    expected = {"ResultCode": "0", "ResultDesc": "Accepted"} if code == "0" else \
        {"ResultCode": code, "ResultDesc": "Rejected"}
    assert response.get_json() == expected


@pytest.mark.parametrize("req_amount,paid,code", [
    (500, "500.00", "0"), (500, "400.00", "C2B00013"), (None, "123.00", "0"), (None, "1.50", "C2B00013"),
])
def test_validation_against_an_open_request(lipa, req_amount, paid, code):
    req = open_request(amount=req_amount)
    response = validate(lipa, c2b_body(BillRefNumber=req.code, TransAmount=paid))
    assert response.get_json()["ResultCode"] == code


@pytest.mark.parametrize("status", ["EXPIRED", "CANCELLED", "PAID", "past_expiry"])
def test_validation_refuses_a_request_no_longer_open(lipa, status):
    req = open_request()
    with write_tx():
        if status == "past_expiry":
            PaymentRequest.update(expires_at=utcnow() - timedelta(minutes=1)).where(
                PaymentRequest.id == req.id).execute()
        else:
            set_request_status(req, status)
    response = validate(lipa, c2b_body(BillRefNumber=req.code, TransAmount="500.00"))
    assert response.get_json() == {"ResultCode": "C2B00012", "ResultDesc": "Rejected"}


@pytest.mark.parametrize("body", ["not json", "", "[]", b"\xff\xfe\x00junk", json.dumps("text")])
def test_validation_malformed_is_200_other_error(lipa, body):
    response = validate(lipa, body)
    assert response.status_code == 200
    assert response.get_json() == {"ResultCode": "C2B00016", "ResultDesc": "Rejected"}


def test_validation_stores_nothing_and_wrong_token_is_404(lipa):
    validate(lipa, c2b_body())
    response = post(lipa.test_client(), lipa, c2b_body(), url="/mpesa/c2b/validation/guess")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    assert InboxMessage.select().count() == 0 and Payment.select().count() == 0


# --- confirmation -------------------------------------------------------------------------------

def test_confirmation_with_hashed_msisdn_creates_completed_c2b_payment(lipa):
    response = confirm(lipa, c2b_body())
    assert response.status_code == 200
    assert response.get_json() == {"ResultCode": 0, "ResultDesc": "Success"}
    payment = Payment.get()
    assert (payment.status, payment.channel, payment.amount, payment.account) == ("COMPLETED", "c2b", 10, "482913")
    assert (payment.phone, payment.payer_hash, payment.payer_name) == ("", FIXTURE_HASH, "JOHN")
    assert payment.mpesa_receipt == "RKTQDM7W6S" and payment.reference.startswith("LP") and not payment.flagged
    kinds = [(e.kind, e.from_status, e.to_status, e.actor) for e in payment.events.order_by(PaymentEvent.id)]
    assert kinds == [("created", "PENDING", "PENDING", "c2b"), ("transition", "PENDING", "COMPLETED", "c2b")]
    row = InboxMessage.get()
    assert (row.source, row.status, row.dedupe_key, row.payment_id) == ("daraja.c2b", "APPLIED", "c2b:RKTQDM7W6S",
                                                                        payment.id)


def test_confirmation_with_a_real_number(lipa):
    confirm(lipa, c2b_body(MSISDN="254712345678", FirstName="Jane", MiddleName="W", LastName="Doe",
                           BillRefNumber="shop-1"))
    payment = Payment.get()
    assert (payment.phone, payment.payer_name, payment.account) == ("254712345678", "Jane W Doe", "SHOP-1")
    assert payment.payer_hash == hashlib.sha256(b"254712345678").hexdigest()
    assert Notification.get(Notification.kind == "payment_completed").recipient == "254712345678"


def test_duplicate_trans_id_is_absorbed(lipa):
    for _ in range(3):
        assert confirm(lipa, c2b_body()).get_json()["ResultCode"] == 0
    assert Payment.select().count() == 1 and InboxMessage.select().count() == 1
    row = InboxMessage.get()
    assert row.status == "APPLIED" and apply_c2b(row.id) == "APPLIED"
    assert PaymentEvent.select().where(PaymentEvent.kind == "transition").count() == 1


def test_stored_but_unapplied_confirmation_is_applied_on_repeat(lipa):
    row = InboxMessage.create(source="daraja.c2b", body=json.dumps(c2b_body()), dedupe_key="c2b:RKTQDM7W6S")
    confirm(lipa, c2b_body())
    assert InboxMessage.get_by_id(row.id).status == "APPLIED" and Payment.get().channel == "c2b"


def test_stk_receipt_then_same_c2b_is_one_payment(lipa):
    stk = make_payment(status="COMPLETED", amount=10, mpesa_receipt="RKTQDM7W6S")
    confirm(lipa, c2b_body())
    assert Payment.select().count() == 1
    row = InboxMessage.get()
    assert row.status == "DUPLICATE" and row.payment_id == stk.id
    assert PaymentEvent.get(PaymentEvent.kind == "c2b_duplicate").payment_id == stk.id
    assert not Payment.get_by_id(stk.id).flagged


@pytest.mark.parametrize("msisdn", [PHONE, hashlib.sha256(PHONE.encode()).hexdigest()])
def test_c2b_completes_the_stk_payment_waiting_for_it(lipa, msisdn):
    stk = make_payment(status="PROCESSING", amount=500)
    confirm(lipa, c2b_body(MSISDN=msisdn, TransAmount="500.00", BillRefNumber="acc42", TransID="NLJ7RT61SV"))
    assert Payment.select().count() == 1
    fresh = Payment.get_by_id(stk.id)
    assert (fresh.status, fresh.mpesa_receipt, fresh.channel) == ("COMPLETED", "NLJ7RT61SV", "ussd")
    assert fresh.active_phone is None and InboxMessage.get().status == "APPLIED"
    response = post(lipa.test_client(), lipa, paid_body())  # the STK callback arrives late
    assert response.status_code == 200
    assert InboxMessage.get(InboxMessage.source == "daraja.stk").status == "DUPLICATE"
    assert Payment.select().count() == 1 and not Payment.get_by_id(stk.id).flagged


def test_c2b_brings_the_receipt_of_a_payment_an_stk_query_completed(lipa):
    stk = make_payment(status="COMPLETED", amount=500)  # the sweep's query said paid; queries carry no receipt
    confirm(lipa, c2b_body(MSISDN=PHONE, TransAmount="500.00", BillRefNumber="ACC42", TransID="NLJ7RT61SV"))
    fresh = Payment.get_by_id(stk.id)
    assert (fresh.status, fresh.mpesa_receipt) == ("COMPLETED", "NLJ7RT61SV") and Payment.select().count() == 1
    assert PaymentEvent.get(PaymentEvent.kind == "receipt").actor == "c2b"
    post(lipa.test_client(), lipa, paid_body())
    assert InboxMessage.get(InboxMessage.source == "daraja.stk").status == "DUPLICATE"


def test_c2b_for_an_expired_stk_payment_is_late_money(lipa):
    stk = make_payment(status="EXPIRED", amount=500)
    confirm(lipa, c2b_body(MSISDN=PHONE, TransAmount="500.00", BillRefNumber="ACC42"))
    assert Payment.get_by_id(stk.id).status == "COMPLETED" and Payment.select().count() == 1
    assert Alert.get().kind == "late_payment"


@pytest.mark.parametrize("changes", [
    {"MSISDN": "254712345678"}, {"TransAmount": "499.00"}, {"BillRefNumber": "OTHER"},
    {"MSISDN": hashlib.sha256(b"254712345678").hexdigest()},
])
def test_c2b_that_does_not_match_the_stk_payment_is_its_own(lipa, changes):
    stk = make_payment(status="PROCESSING", amount=500)
    confirm(lipa, c2b_body(**{"MSISDN": PHONE, "TransAmount": "500.00", "BillRefNumber": "ACC42", **changes}))
    assert Payment.get_by_id(stk.id).status == "PROCESSING"
    assert Payment.get(Payment.channel == "c2b").status == "COMPLETED"


def test_confirmation_pays_an_open_request(lipa):
    req = open_request(amount=10)
    confirm(lipa, c2b_body(BillRefNumber=req.code))
    payment = Payment.get()
    assert payment.request_id == req.id and PaymentRequest.get_by_id(req.id).status == "PAID"
    assert not payment.flagged and InboxMessage.get().status == "APPLIED"


def test_wrong_amount_for_a_request_is_kept_but_does_not_pay_it(lipa):
    req = open_request(amount=500)
    confirm(lipa, c2b_body(BillRefNumber=req.code))
    payment = Payment.get()
    assert payment.status == "COMPLETED" and payment.request_id is None and payment.flagged
    assert PaymentRequest.get_by_id(req.id).status == "OPEN"
    assert Alert.get().kind == "unexpected_money" and InboxMessage.get().status == "FLAGGED"


@pytest.mark.parametrize("account", ["bad account!", "", "A" * 25])
def test_unknown_account_is_unexpected_money(lipa, account):
    confirm(lipa, c2b_body(BillRefNumber=account))
    payment = Payment.get()
    assert payment.status == "COMPLETED" and payment.flagged and "unknown account" in payment.flag_reason
    assert Alert.get().kind == "unexpected_money" and AuditLog.get().actor == "system"


def test_fractional_amount_is_recorded_and_flagged(lipa):
    confirm(lipa, c2b_body(TransAmount="10.50"))
    payment = Payment.get()
    assert (payment.status, payment.amount, payment.flagged) == ("COMPLETED", 10, True)
    assert "10.50" in payment.flag_reason and Alert.get().kind == "c2b_amount"
    assert InboxMessage.get().status == "FLAGGED"


def test_unreadable_msisdn_is_still_money(lipa):
    confirm(lipa, c2b_body(MSISDN="hello"))
    payment = Payment.get()
    assert payment.status == "COMPLETED" and payment.phone == "" and payment.payer_hash is None and payment.flagged


@pytest.mark.parametrize("body", [
    "not json", "", "[]", b"\xff\xfe\x00junk", json.dumps(c2b_body(TransID="")),
    json.dumps(c2b_body(TransID="BAD ID!")), json.dumps(c2b_body(TransAmount="-5")),
    json.dumps(c2b_body(TransAmount="zero")), json.dumps({k: v for k, v in c2b_body().items() if k != "TransID"}),
])
def test_malformed_confirmation_is_400_json_and_stored_rejected(lipa, body):
    response = confirm(lipa, body)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "malformed_c2b"
    assert InboxMessage.get().status == "REJECTED" and Payment.select().count() == 0


def test_confirmation_wrong_token_is_404_and_nothing_stored(lipa):
    response = post(lipa.test_client(), lipa, c2b_body(), url="/mpesa/c2b/confirmation/guess")
    assert response.status_code == 404 and InboxMessage.select().count() == 0


# --- registering the URLs -----------------------------------------------------------------------

@pytest.fixture
def fake():
    server = FakeDaraja()
    yield server
    server.stop()


def daraja(base_url):
    return DarajaClient(base_url=base_url, consumer_key="key", consumer_secret="secret", shortcode="600638",
                        passkey="pk", token_store=MemoryTokenStore(), sleep=lambda s: None)


def test_register_sends_the_documented_body(fake):
    fake.queue(REGISTER_PATH, 200, {"OriginatorCoversationID": "x-1", "ResponseCode": "0",
                                    "ResponseDescription": "Success"})
    confirmation, validation = c2b_urls("http://127.0.0.1:8000/", "tok")
    answer = register_c2b_urls(daraja(fake.url), shortcode="600638", confirmation_url=confirmation,
                               validation_url=validation)
    assert answer["ResponseCode"] == "0"
    [call] = [c for c in fake.calls if c.path == REGISTER_PATH]
    assert call.authorization == "Bearer tok-1" and call.method == "POST"
    assert call.body == {"ShortCode": "600638", "ResponseType": "Completed",
                         "ConfirmationURL": "http://127.0.0.1:8000/mpesa/c2b/confirmation/tok",
                         "ValidationURL": "http://127.0.0.1:8000/mpesa/c2b/validation/tok"}


def test_register_refusal_is_a_typed_error(fake):
    fake.queue(REGISTER_PATH, 200, {"ResponseCode": "1", "ResponseDescription": "URLs already registered"})
    with pytest.raises(DarajaBadResponse):
        register_c2b_urls(daraja(fake.url), shortcode="600638", confirmation_url="https://a.example/c",
                          validation_url="https://a.example/v")


@pytest.mark.parametrize("url", [
    "http://pay.example.com/lipa/c2b/confirm/t", "https://pay.example.com/mpesa/c2b/confirmation/t",
    "https://safaricom-pay.example.com/c", "https://pay.example.com/SQL/c", "https://pay.example.com/c?query=1",
    "https://pay.example.com/exec/c", "https://pay.example.com/cmd", "not a url",
])
def test_register_refuses_bad_production_urls_before_calling(fake, url):
    with pytest.raises(InvalidInput):
        register_c2b_urls(daraja(fake.url), shortcode="600638", confirmation_url=url,
                          validation_url="https://pay.example.com/lipa/c2b/check/t", production=True)
    assert fake.calls == []


def test_register_production_is_inferred_and_neutral_urls_pass(fake):
    client = daraja("https://api.safaricom.co.ke")
    with pytest.raises(InvalidInput):
        register_c2b_urls(client, shortcode="600638", confirmation_url="https://x.example/mpesa/c",
                          validation_url="https://x.example/v")
    fake.queue(REGISTER_PATH, 200, {"ResponseCode": "0", "ResponseDescription": "Success"})
    answer = register_c2b_urls(daraja(fake.url), shortcode="600638", production=True, response_type="Cancelled",
                               confirmation_url="https://pay.example.com/lipa/c2b/confirm/t",
                               validation_url="https://pay.example.com/lipa/c2b/check/t")
    assert answer["ResponseDescription"] == "Success" and fake.calls[-1].body["ResponseType"] == "Cancelled"


@pytest.mark.parametrize("kwargs", [{"response_type": "Done"}, {"shortcode": "60x"}])
def test_register_checks_its_arguments(fake, kwargs):
    args = {"shortcode": "600638", "confirmation_url": "https://a.example/c", "validation_url": "https://a.example/v",
            **kwargs}
    with pytest.raises(InvalidInput):
        register_c2b_urls(daraja(fake.url), **args)


@pytest.mark.server  # a child process
def test_register_c2b_command(fake, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    fake.queue(REGISTER_PATH, 200, {"OriginatorCoversationID": "x-1", "ResponseCode": "0",
                                    "ResponseDescription": "Success"})
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
           "MPESA_BASE_URL": fake.url, "MPESA_CONSUMER_KEY": "key", "MPESA_CONSUMER_SECRET": "secret",
           "LIPA_PUBLIC_URL": "https://pay.example.com", "MPESA_CALLBACK_TOKEN": "t" * 20}
    proc = subprocess.run([sys.executable, str(root / "run_gateway.py"), "register-c2b"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "registered: Success" in proc.stdout, proc.stderr
    [call] = [c for c in fake.calls if c.path == REGISTER_PATH]
    assert call.body["ConfirmationURL"] == f"https://pay.example.com/mpesa/c2b/confirmation/{'t' * 20}"
    assert call.body["ResponseType"] == "Completed" and "t" * 20 not in proc.stdout + proc.stderr
