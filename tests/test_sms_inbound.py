"""Customers' SMS commands through the Flask test client, posted form-encoded as Africa's Talking does."""
from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from gateway.ingest import inbox
from gateway.notify import outbox
from gateway.sms import commands, ratelimit
from gateway.texts import sms as replies
from shared.db import db
from shared.models import InboxMessage, Notification, Payment, PaymentRequest, PhonePreference
from shared.states import RequestStatus
from shared.timeutil import utcnow

from .conftest import QuietDispatcher, fixture_text

PHONE = "+254712345678"
NORMALIZED = "254712345678"
OTHER = "254798765432"
_ids = itertools.count(1)




@pytest.fixture
def sms_app(sim, make_app):
    """The gateway with the SMS blueprint, wired to the simulators."""
    app = make_app(dispatcher=QuietDispatcher(), config_overrides={
        "mpesa_base_url": sim.daraja_url, "at_base_url": sim.at_url, "public_url": "http://127.0.0.1:9"})
    return app


@pytest.fixture
def rows(sms_app):
    """Direct row access in the test thread; the requests reuse this connection."""
    with db.connection_context():
        yield db
    sms_app.extensions["lipa"].tasks.drain()


class Texter:
    """One phone texting the short code; each message gets a fresh AT id unless one is given."""

    def __init__(self, app, phone: str = PHONE):
        self.app = app
        self.client = app.test_client()
        self.phone = phone
        self.last_id = ""

    def post(self, text: str, *, at_id: str | None = None, **kwargs):
        self.last_id = at_id or f"ATXid_test{next(_ids):06d}"
        data = {"date": utcnow().strftime("%Y-%m-%d %H:%M:%S"), "from": self.phone, "id": self.last_id,
                "linkId": "", "networkCode": "63902", "text": text, "to": "22384"}
        return self.client.post("/sms/inbound", data=data, **kwargs)

    def send(self, text: str, **kwargs) -> str | None:
        """Text the short code and wait for the background work; the reply queued, if any."""
        response = self.post(text, **kwargs)
        assert response.status_code == 200, response.get_data(as_text=True)
        self.app.extensions["lipa"].tasks.drain()
        reply = Notification.get_or_none(Notification.dedupe_key == f"reply:{self.last_id}")
        return reply.body if reply else None


@pytest.fixture
def phone(sms_app, rows):
    return Texter(sms_app)


def make_payment(reference: str, status: str = "COMPLETED", *, phone: str = NORMALIZED, amount: int = 500,
                 account: str = "ACC1", minutes_ago: int = 0, **fields) -> Payment:
    active = phone if status in ("PENDING", "PROCESSING") else None
    return Payment.create(reference=reference, phone=phone, amount=amount, account=account, status=status,
                          channel="api", active_phone=active, created_at=utcnow() - timedelta(minutes=minutes_ago),
                          **fields)


def replies_to(phone: str = NORMALIZED) -> list[Notification]:
    return list(Notification.select().where(Notification.kind == "reply", Notification.recipient_hash == phone))


@pytest.mark.parametrize("text, lang, key", [
    ("HELP", "en", "help"), ("  help ", "en", "help"), ("MSAADA", "sw", "help"), ("msaada", "sw", "help"),
    ("STOP", "en", "stopped"), ("Acha", "sw", "stopped"), ("start", "en", "started"), (" ANZA", "sw", "started"),
    ("STATUS", "en", "no_payments"), ("hali", "sw", "no_payments"),
    ("History", "en", "no_payments"), ("HISTORIA", "sw", "no_payments"),
    ("PAY", "en", "pay_usage"), ("lipa", "sw", "pay_usage"),
    ("hello there", "en", "unknown"), ("", "en", "unknown"), ("?", "en", "unknown"),
])
def test_each_command_in_english_and_kiswahili(phone, text, lang, key):
    assert phone.send(text) == replies.t(lang, key)
    [reply] = replies_to()
    assert (reply.status, reply.kind, reply.channel, reply.language) == ("QUEUED", "reply", "sms", lang)
    assert InboxMessage.get(InboxMessage.dedupe_key == f"at.sms:{phone.last_id}").status == "APPLIED"


def test_a_phone_that_chose_kiswahili_gets_kiswahili_for_english_commands(phone):
    PhonePreference.create(phone=NORMALIZED, language="sw")
    assert phone.send("HELP") == replies.t("sw", "help")


@pytest.mark.parametrize("text", ["  status   lp7k3q9mx ", "STATUS LP7K3Q9MX", "Hali lp7k3q9mx"])
def test_status_with_a_reference_mixed_case_and_spaces(phone, text):
    make_payment("LP7K3Q9MX", "COMPLETED", amount=1200, account="ACC9", mpesa_receipt="QKJ4H5T6Y7")
    make_payment("LPNEWER01", "FAILED")
    body = phone.send(text)
    lang = "sw" if text.lower().startswith("hali") else "en"
    assert body == replies.status(lang, ref="LP7K3Q9MX", state="COMPLETED", amount=1200, account="ACC9",
                                  receipt="QKJ4H5T6Y7")
    assert "LP7K3Q9MX" in body and "KES 1,200" in body and "QKJ4H5T6Y7" in body


def test_status_without_a_reference_is_the_latest_payment(phone):
    make_payment("LPOLDER01", "COMPLETED", minutes_ago=30)
    make_payment("LPLATEST1", "PROCESSING", amount=2500, account="12345")
    assert phone.send("STATUS") == "Payment LPLATEST1: Waiting for your PIN. KES 2,500 to account 12345."


def test_status_never_reveals_another_phones_payment(phone):
    make_payment("LPTHEIRS1", "COMPLETED", phone=OTHER, amount=9999, account="SECRET", mpesa_receipt="QAAAAAAAAA")
    make_payment("LPMINE001", "COMPLETED")
    body = phone.send("STATUS LPTHEIRS1")
    assert body == replies.not_found("en", "LPTHEIRS1")
    assert body == phone.send("STATUS LPNOSUCH1").replace("LPNOSUCH1", "LPTHEIRS1")  # same as a made-up ref
    assert "9,999" not in body and "SECRET" not in body and "QAAAAAAAAA" not in body


def test_history_lists_the_latest_payments_newest_first_in_one_sms(phone):
    for n in range(6):
        make_payment(f"LPHIST00{n}", "COMPLETED", amount=100 + n, minutes_ago=60 - n)
    make_payment("LPOTHER01", "COMPLETED", phone=OTHER)
    body = phone.send("HISTORY")
    lines = body.splitlines()
    assert lines[0] == "Your recent payments:"
    assert lines[1:] == [f"LPHIST00{n} KES {100 + n} Paid" for n in (5, 4, 3, 2)]
    assert len(body) <= 160


@pytest.mark.parametrize("text, lang", [("PAY 12345 500", "en"), ("  lipa   12345  500 ", "sw"),
                                        ("pay 12345 KES 500", "en")])
def test_pay_starts_an_stk_push_to_the_sender(sms_app, phone, sim, text, lang):
    body = phone.send(text)
    payment = Payment.get(Payment.phone_hash == NORMALIZED)
    assert body == replies.pay_started(lang, amount=500, account="12345", ref=payment.reference)
    assert (payment.channel, payment.amount, payment.account, payment.language) == ("sms", 500, "12345", lang)
    assert payment.idempotency_key == f"sms:{phone.last_id}"
    sms_app.extensions["lipa"].tasks.drain()
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "PROCESSING" and payment.checkout_request_id
    [push] = sim.daraja.requests_log()
    assert (push["phone"], push["amount"], push["account"]) == (NORMALIZED, 500, "12345")
    [reply] = replies_to()
    assert reply.payment_id == payment.id


def test_pay_a_bill_code_uses_the_bills_amount(phone):
    PaymentRequest.create(code="482913", amount=750, account="SCHOOLFEES", status=RequestStatus.OPEN.value)
    body = phone.send("PAY 482913")
    payment = Payment.get(Payment.phone_hash == NORMALIZED)
    assert (payment.amount, payment.account, payment.request.code) == (750, "SCHOOLFEES", "482913")
    assert body.startswith("Wait for the M-Pesa prompt") and "KES 750" in body


@pytest.mark.parametrize("text, reply", [
    ("PAY 12345 0", replies.refused("en", "err.amount_out_of_range")),
    ("PAY 12345 250001", replies.refused("en", "err.amount_out_of_range")),
    ("PAY 12345 abc", replies.refused("en", "err.invalid_amount")),
    ("PAY 12345 12.50", replies.refused("en", "err.invalid_amount")),
    ("LIPA 12345 -5", replies.refused("sw", "err.invalid_amount")),
    ("PAY ACCOUNT_WAY_TOO_LONG 500", replies.refused("en", "err.invalid_account")),
    ("PAY AB*1 500", replies.refused("en", "err.invalid_account")),
    ("PAY 12345", replies.t("en", "pay_usage")),
    ("PAY 12345 500 extra", replies.t("en", "pay_usage")),
    ("PAY 111111 500", replies.refused("en", "err.bill_paid", code="111111")),
    ("PAY 222222 500", replies.refused("en", "err.bill_closed", code="222222")),
    ("PAY 333333 500", replies.bill_amount("en", code="333333", amount=750)),
])
def test_pay_refused_with_the_reason_and_no_payment(phone, sim, text, reply):
    PaymentRequest.create(code="111111", amount=500, account="PAIDBILL", status=RequestStatus.PAID.value)
    PaymentRequest.create(code="222222", amount=500, account="OLDBILL", status=RequestStatus.CANCELLED.value)
    PaymentRequest.create(code="333333", amount=750, account="FIXEDBILL", status=RequestStatus.OPEN.value)
    assert phone.send(text) == reply
    assert not Payment.select().exists()
    assert sim.daraja.requests_log() == []


def test_pay_while_a_payment_is_in_progress_names_it(phone, sim):
    make_payment("LPBUSY001", "PROCESSING")
    assert phone.send("PAY 12345 500") == replies.refused("en", "err.in_progress", ref="LPBUSY001")
    assert Payment.select().count() == 1 and sim.daraja.requests_log() == []


def test_stop_suppresses_notifications_but_replies_still_go_out(phone):
    assert phone.send("STOP") == replies.t("en", "stopped")
    assert PhonePreference.get(PhonePreference.phone_hash == NORMALIZED).notifications is False
    payment = make_payment("LPSTOP001", "COMPLETED")
    with db.atomic():
        note = outbox.enqueue(channel="sms", kind="payment_completed", recipient=NORMALIZED, body="Paid.",
                              payment=payment, respect_opt_out=True)
    assert note.status == "SUPPRESSED"
    assert phone.send("HELP") == replies.t("en", "help")
    assert Notification.get(Notification.dedupe_key == f"reply:{phone.last_id}").status == "QUEUED"
    assert phone.send("START") == replies.t("en", "started")
    assert PhonePreference.get(PhonePreference.phone_hash == NORMALIZED).notifications is True
    with db.atomic():
        resumed = outbox.enqueue(channel="sms", kind="payment_completed", recipient=NORMALIZED, body="Paid.",
                                 payment=payment, respect_opt_out=True)
    assert resumed.status == "QUEUED"


def test_the_same_at_id_twice_gives_one_reply_and_one_payment(sms_app, phone):
    first = phone.post("PAY 12345 500", at_id="ATXid_same")
    sms_app.extensions["lipa"].tasks.drain()
    again = phone.post("PAY 12345 500", at_id="ATXid_same")
    sms_app.extensions["lipa"].tasks.drain()
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.get_json()["status"], again.get_json()["status"]) == ("accepted", "duplicate")
    assert Payment.select().count() == 1
    assert len(replies_to()) == 1
    assert InboxMessage.select().where(InboxMessage.source == "at.sms").count() == 1


def test_applying_one_stored_message_twice_replies_once(sms_app, phone):
    response = phone.post("HELP", keep_open=True)  # the background work has not started yet
    row = InboxMessage.get(InboxMessage.dedupe_key == f"at.sms:{phone.last_id}")
    assert row.status == "RECEIVED" and replies_to() == []
    assert commands.apply_inbound(row.id).status == "APPLIED"
    assert commands.apply_inbound(row.id).status == "APPLIED"
    response.close()
    sms_app.extensions["lipa"].tasks.drain()
    assert len(replies_to()) == 1


def test_replies_are_rate_limited_per_phone(phone, caplog):
    answers = [phone.send("HELP") for _ in range(ratelimit.MAX_REPLIES + 1)]
    assert answers[:5] == [replies.t("en", "help")] * 5 and answers[5] is None
    assert len(replies_to()) == ratelimit.MAX_REPLIES
    assert InboxMessage.get(InboxMessage.dedupe_key == f"at.sms:{phone.last_id}").note == "rate limited"
    assert phone.send("PAY 12345 500") is None  # a PAY over the limit is refused too
    assert not Payment.select().exists()
    other = Texter(phone.app, phone="0798765432")
    assert other.send("HELP") == replies.t("en", "help")  # per phone


def test_the_rate_limit_holds_when_a_burst_is_applied_at_once(rows):
    """Eight workers apply eight stored HELPs together: still five replies (the count is in the database)."""
    ids = []
    for n in range(8):
        body = urlencode({"from": PHONE, "id": f"ATXid_burst{n}", "text": "HELP", "to": "22384"})
        ids.append(inbox.store("at.sms", body, dedupe_key=f"at.sms:ATXid_burst{n}")[0].id)

    def apply(inbox_id):
        with db.connection_context():
            return commands.apply_inbound(inbox_id).status

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(apply, ids)) == ["APPLIED"] * 8
    assert len(replies_to()) == ratelimit.MAX_REPLIES
    notes = [row.note for row in InboxMessage.select().where(InboxMessage.id.in_(ids))]
    assert sorted(notes) == ["help"] * 5 + ["rate limited"] * 3


def test_replies_older_than_the_window_do_not_count(phone):
    for n in range(ratelimit.MAX_REPLIES):
        Notification.create(channel="sms", kind="reply", recipient=NORMALIZED, body="old", dedupe_key=f"old{n}",
                            created_at=utcnow() - ratelimit.WINDOW - timedelta(seconds=5))
    assert phone.send("HELP") == replies.t("en", "help")


def test_the_recorded_africastalking_message_is_understood(sms_app, rows):
    raw = fixture_text("at_sms_inbound.txt").strip()
    response = sms_app.test_client().post("/sms/inbound", data=raw, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    sms_app.extensions["lipa"].tasks.drain()
    row = InboxMessage.get(InboxMessage.dedupe_key == "at.sms:ATXid_5b1c2e7f9a0d4e3b8c6a1f2d3e4b5c6d")
    assert (row.source, row.body, row.status, row.note) == ("at.sms", raw, "APPLIED", "status")
    [reply] = replies_to()
    assert reply.body == replies.t("en", "no_payments")


def test_the_answer_goes_out_before_the_command_is_applied(sms_app, phone, sim):
    response = phone.post("PAY 12345 500", keep_open=True)
    assert response.status_code == 200 and response.get_json() == {"status": "accepted"}
    assert not Payment.select().exists() and sim.daraja.requests_log() == []
    response.close()
    sms_app.extensions["lipa"].tasks.drain()
    assert Payment.get(Payment.phone_hash == NORMALIZED).status == "PROCESSING"


BASE = {"date": "2017-05-03T06:04:45Z", "from": PHONE, "id": "ATXid_junk", "linkId": "", "networkCode": "63902",
        "text": "HELP", "to": "22384"}


@pytest.mark.parametrize("name, data, content_type, code", [
    ("missing from", {k: v for k, v in BASE.items() if k != "from"}, None, 400),
    ("invalid phone", {**BASE, "from": "12345"}, None, 400),
    ("foreign phone", {**BASE, "from": "+12025550100"}, None, 400),
    ("short code sender", {**BASE, "from": "MPESA"}, None, 400),
    ("missing id", {k: v for k, v in BASE.items() if k != "id"}, None, 400),
    ("huge id", {**BASE, "id": "x" * 10_000}, None, 400),
    ("missing text", {k: v for k, v in BASE.items() if k != "text"}, None, 400),
    ("empty text", {**BASE, "text": ""}, None, 200),
    ("huge text", {**BASE, "text": "A" * 10_000}, None, 200),
    ("huge from", {**BASE, "from": "7" * 10_000}, None, 400),
    ("nul bytes", {**BASE, "text": "HE\x00LP"}, None, 200),
    ("emoji", {**BASE, "text": "\U0001F600 status"}, None, 200),
    ("empty body", b"", "application/x-www-form-urlencoded", 400),
    ("binary body", bytes(range(256)) * 4, "application/x-www-form-urlencoded", 400),
    ("binary octets", bytes(range(256)), "application/octet-stream", 400),
    ("json body", b'{"from": "+254712345678", "text": "HELP"}', "application/json", 400),
    ("multipart", BASE, "multipart/form-data", 200),
])
def test_junk_is_stored_and_answered_without_a_500(sms_app, rows, name, data, content_type, code):
    kwargs = {"content_type": content_type} if content_type else {}
    response = sms_app.test_client().post("/sms/inbound", data=data, **kwargs)
    assert response.status_code == code, response.get_data(as_text=True)
    if code == 400:
        error = response.get_json()["error"]
        assert error["code"] and error["message"]
    sms_app.extensions["lipa"].tasks.drain()
    [row] = InboxMessage.select().where(InboxMessage.source == "at.sms")
    assert row.status == ("REJECTED" if code == 400 else "APPLIED")
    assert len(replies_to()) == (1 if code == 200 else 0)
    for reply in replies_to():
        assert len(reply.body) <= 160


def test_a_rejected_message_repeated_is_still_stored_once(sms_app, rows):
    client = sms_app.test_client()
    for _ in range(3):
        assert client.post("/sms/inbound", data={**BASE, "from": "12345"}).status_code == 400
    assert InboxMessage.select().count() == 1


@pytest.mark.parametrize("raw, expected", [
    ("2017-05-03T06:04:45Z", (2017, 5, 3, 6, 4, 45)),
    ("2017-05-03 06:04:45", (2017, 5, 3, 6, 4, 45)),
    ("2017-05-03T09:04:45+03:00", (2017, 5, 3, 6, 4, 45)),
    ("yesterday", None), ("", None), (None, None),
])
def test_both_date_forms_are_read(raw, expected):
    value = commands.parse_date(raw)
    assert (value.timetuple()[:6] if value else None) == expected
