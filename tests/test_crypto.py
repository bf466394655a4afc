"""Personal data at rest: phones, payer names and raw provider bodies never reach the database in clear, and
every look-up by phone still works through the keyed hash (USSD, SMS, API filter, one active payment per
phone, phone preferences)."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import peewee
import pytest
from cryptography.fernet import Fernet

from gateway.notify.preferences import opted_out
from gateway.payments.service import initiate
from gateway.reconciliation.service import import_statement
from shared.db import db, init_db, is_sqlite, write_tx
from shared.errors import NotAllowed
from shared.models import Notification, Payment, PhonePreference, Setting, StatementLine, keystore
from shared.privacy import crypto
from shared.privacy.sealed import Digest
from tests.conftest import CALLBACK_TOKEN, DATA_KEY, QuietDispatcher, fixture_json, fixture_text

PHONE = "254722334455"  # dials USSD, texts, pays by STK
PAYER = "254733445566"  # pays by C2B, unprompted
BILLED = "254798112233"  # a payment request's phone
NAMES = ("WANJIKU", "MUTHONI")
_ids = itertools.count(1)


def needles() -> list[str]:
    """Every form a phone or name could take in a column: 2547…, 07…, the 9 national digits."""
    out = list(NAMES)
    for phone in (PHONE, PAYER, BILLED):
        out += [phone, "0" + phone[3:], phone[3:]]
    return out


@pytest.fixture
def gw(sim, make_app):
    app = make_app(dispatcher=QuietDispatcher(), config_overrides={
        "mpesa_base_url": sim.daraja_url, "at_base_url": sim.at_url, "public_url": "http://127.0.0.1:9"})
    with db.connection_context():
        yield app
    app.extensions["lipa"].tasks.drain()


def ussd(app, *inputs: str, phone: str = PHONE) -> str:
    client, session, text = app.test_client(), f"ATUid_crypto_{next(_ids)}", ""
    for step in ("", *inputs):
        text = step if not text else f"{text}*{step}"
        body = client.post("/ussd", data={"sessionId": session, "serviceCode": "*384*123#", "phoneNumber": phone,
                                          "networkCode": "63902", "text": text}).get_data(as_text=True)
    app.extensions["lipa"].tasks.drain()
    return body


def sms(app, text: str, phone: str = PHONE) -> str:
    at_id = f"ATXid_crypto{next(_ids):06d}"
    response = app.test_client().post("/sms/inbound", data={
        "date": "2026-11-23 10:15:02", "from": "+" + phone, "id": at_id, "linkId": "", "networkCode": "63902",
        "text": text, "to": "22384"})
    assert response.status_code == 200
    app.extensions["lipa"].tasks.drain()
    return Notification.get(Notification.dedupe_key == f"reply:{at_id}").body


def post_json(app, url: str, body: dict, **kwargs):
    response = app.test_client().post(url, data=json.dumps(body), content_type="application/json", **kwargs)
    app.extensions["lipa"].tasks.drain()
    return response


def stk_paid(app, payment: Payment, receipt: str) -> None:
    body = fixture_json("stk_callback_paid.json")
    callback = body["Body"]["stkCallback"]
    callback["CheckoutRequestID"] = payment.checkout_request_id
    values = {"Amount": payment.amount, "MpesaReceiptNumber": receipt, "PhoneNumber": int(payment.phone)}
    for item in callback["CallbackMetadata"]["Item"]:
        if item["Name"] in values:
            item["Value"] = values[item["Name"]]
    assert post_json(app, f"/mpesa/stk/callback/{CALLBACK_TOKEN}", body).status_code == 200


def personal_traffic(app) -> dict:
    """Every way a phone or name gets in: USSD, SMS, STK callback, C2B, an API request, a statement."""
    assert ussd(app, "1", "12345", "500", "1").startswith("END")
    stk_payment = Payment.get(Payment.phone_hash == PHONE)
    assert stk_payment.checkout_request_id, "the simulator accepted the push"
    stk_paid(app, stk_payment, "RKT0000001")
    sms(app, "STOP")
    c2b = {**fixture_json("c2b_confirmation.json"), "TransID": "RKT0000002", "MSISDN": PAYER, "BillRefNumber": "SHOP1",
           "FirstName": NAMES[0], "LastName": NAMES[1]}
    assert post_json(app, f"/mpesa/c2b/confirmation/{CALLBACK_TOKEN}", c2b).status_code == 200
    from gateway.backoffice import auth

    auth.create_staff("op", "op-password-1", "operator")
    token = auth.login("op", "op-password-1")[0]
    answer = post_json(app, "/api/v1/payment-requests", {"amount": 700, "account": "BILL1", "phone": "0" + BILLED[3:]},
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "bill-1"})
    assert answer.status_code == 201, answer.get_json()
    statement = fixture_text("mpesa_statement.csv").replace("254708****49 - JOHN", f"{PAYER} - {' '.join(NAMES)}")
    import_statement(statement.encode(), filename="statement.csv", uploaded_by="test")
    return {"stk": stk_payment.id}


def raw_rows() -> str:
    """Every value of every table, as the database holds it."""
    out = []
    for table in db.get_tables():
        out += [repr(row) for row in db.execute_sql(f'SELECT * FROM "{table}"').fetchall()]
    return "\n".join(out)


def test_nothing_personal_is_stored_in_clear_and_every_look_up_still_works(gw, db_url):
    ids = personal_traffic(gw)
    stored = raw_rows()
    assert "gAAAAA" in stored  # Fernet tokens are there...
    for needle in needles():  # ...and the phones and names are not, in any column of any table
        assert needle not in stored, needle
    if is_sqlite():  # nor anywhere in the file (or its write-ahead log)
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(db_url.removeprefix("sqlite:///"))
        data = path.read_bytes() + (Path(f"{path}-wal").read_bytes() if Path(f"{path}-wal").exists() else b"")
        for needle in needles():
            assert needle.encode() not in data, needle

    # The application still reads them plainly.
    stk = Payment.get_by_id(ids["stk"])
    assert (stk.phone, stk.status) == (PHONE, "COMPLETED")
    c2b = Payment.get(Payment.phone_hash == PAYER, Payment.channel == "c2b")
    assert (c2b.payer_name, c2b.channel) == (" ".join(NAMES), "c2b")
    assert StatementLine.get(StatementLine.receipt == "RKTQDM7W6S").other_party == f"{PAYER} - {' '.join(NAMES)}"

    # Look-ups by phone: USSD status and history, SMS STATUS and HISTORY, preferences.
    assert stk.reference in ussd(gw, "2") and stk.reference in ussd(gw, "3")
    assert stk.reference in sms(gw, "STATUS") and stk.reference in sms(gw, "HISTORY")
    assert opted_out(PHONE) and not opted_out(PAYER)
    ussd(gw, "4", "2")  # Kiswahili
    assert PhonePreference.get(PhonePreference.phone_hash == PHONE).language == "sw"
    assert PhonePreference.get(PhonePreference.phone_hash == PHONE).phone == PHONE


def test_one_active_payment_per_phone_holds_on_the_hash(gw):
    first = initiate(phone="0" + PHONE[3:], amount=100, account="ACC1", channel="api")
    assert isinstance(Payment.get_by_id(first.id).active_phone, Digest)
    with pytest.raises(NotAllowed) as info:
        initiate(phone="+" + PHONE, amount=200, account="ACC1", channel="api")
    assert info.value.code == "payment_in_progress"
    with pytest.raises(peewee.IntegrityError), write_tx():  # the index itself refuses a second active row
        Payment.create(reference="LPDUP0001", phone=PHONE, amount=1, account="A", channel="api", active_phone=PHONE)
    assert initiate(phone=PAYER, amount=100, account="ACC1", channel="api").status == "PENDING"  # others may pay


def test_a_row_saved_again_keeps_its_hashes(gw):
    """A Digest read back is written back as is: never hashed a second time."""
    payment = initiate(phone=PHONE, amount=100, account="ACC1", channel="api")
    row = Payment.get_by_id(payment.id)
    stored = (row.phone_hash, row.active_phone)
    row.status_message = "touched"
    row.save()
    again = Payment.get_by_id(payment.id)
    assert (again.phone_hash, again.active_phone) == stored == (crypto.lookup_hash(PHONE),) * 2
    assert Payment.get(Payment.phone_hash == row.phone_hash).id == payment.id  # a Digest compares as is


def test_a_sealed_column_cannot_be_searched_by_mistake(gw):
    with pytest.raises(TypeError, match="Payment.phone_hash"):
        Payment.select().where(Payment.phone == PHONE)
    with pytest.raises(TypeError, match="Notification.recipient_hash"):
        Notification.select().where(Notification.recipient.in_([PHONE]))


def test_a_value_no_key_opens_is_a_clear_error(gw):
    payment = initiate(phone=PHONE, amount=100, account="ACC1", channel="api")
    foreign = Fernet(Fernet.generate_key()).encrypt(PHONE.encode()).decode()
    db.execute_sql(f'UPDATE "payment" SET "phone" = {db.obj.param} WHERE "id" = {db.obj.param}', (foreign, payment.id))
    with pytest.raises(crypto.Unreadable, match="LIPA_DATA_KEY"):
        Payment.get_by_id(payment.id)


def test_local_profile_keeps_generated_keys_with_its_database(config):
    """No keys in the environment (local only): made once, stored in Setting, the same on every start."""
    local = config.with_overrides(data_keys=(), lookup_key="")
    init_db(config.database_url)
    try:
        first = keystore.install_keys(local)
        with db.connection_context():
            keys = [keystore.LOCAL_DATA_KEY, keystore.LOCAL_LOOKUP_KEY]
            stored = {row.key: row.value for row in Setting.select().where(Setting.key.in_(keys))}
        second = keystore.install_keys(local)
        assert set(stored) == {keystore.LOCAL_DATA_KEY, keystore.LOCAL_LOOKUP_KEY}
        assert stored[keystore.LOCAL_DATA_KEY] != DATA_KEY and first.lookup == second.lookup
        assert second.data.decrypt(first.data.encrypt(b"x")) == b"x"
    finally:
        keystore.install_keys(config)
