"""The USSD channel through the Flask test client, hops posted form-encoded the way Africa's Talking does."""
from __future__ import annotations

import itertools
import logging
from datetime import timedelta

import pytest

from gateway.ussd import menu, sessions
from shared.db import db
from shared.models import Payment, PaymentRequest, PhonePreference
from shared.models import UssdSession as SessionRow
from shared.states import RequestStatus
from shared.timeutil import utcnow

from .conftest import fixture_text

PHONE = "+254712345678"
NORMALIZED = "254712345678"
_ids = itertools.count(1)


class UssdSession:
    """One caller's session: every hop posts the whole text so far, with the same sessionId."""

    def __init__(self, client, phone: str = PHONE, session_id: str | None = None):
        self.client = client
        self.phone = phone
        self.session_id = session_id or f"ATUid_test_{next(_ids)}"
        self.inputs: list[str] | None = None

    @property
    def text(self) -> str:
        return "*".join(self.inputs or [])

    def post(self, text: str, **kwargs):
        """Post one hop; the client closes the response (call_on_close runs) as a real server does."""
        data = {"sessionId": self.session_id, "serviceCode": "*384*123#", "phoneNumber": self.phone,
                "networkCode": "63902", "text": text}
        return self.client.post("/ussd", data=data, **kwargs)

    def start(self) -> str:
        """The opening hop (text "")."""
        self.inputs = []
        return self._body(self.post(""))

    def send(self, value: str) -> str:
        """The caller types value and presses send."""
        if self.inputs is None:
            self.start()
        self.inputs.append(value)
        return self._body(self.post(self.text))

    def dial(self, *values: str) -> str:
        """Open the session and type every value; the last screen."""
        body = self.start()
        for value in values:
            body = self.send(value)
        return body

    @staticmethod
    def _body(response) -> str:
        assert response.status_code == 200
        assert response.mimetype == "text/plain"
        body = response.get_data(as_text=True)
        assert body.startswith(("CON ", "END ")) and len(body) <= 160, body
        return body


@pytest.fixture
def rows(app):
    """Direct row access in the test thread. Not conftest's conn: each request's teardown closes the
    thread's connection, which a surrounding connection_context() cannot survive."""
    yield db
    app.extensions["lipa"].tasks.drain()  # pushes go out while the simulator still runs
    if not db.is_closed():
        db.close()


@pytest.fixture
def caller(client):
    """A factory of USSD sessions for one phone (a new sessionId each time)."""
    return lambda phone=PHONE, session_id=None: UssdSession(client, phone, session_id)


def make_payment(reference: str, status: str = "COMPLETED", amount: int = 500, account: str = "ACC1",
                 minutes_ago: int = 0, **fields) -> Payment:
    """A payment row as other channels leave it (no push, no events)."""
    active = NORMALIZED if status in ("PENDING", "PROCESSING") else None
    return Payment.create(reference=reference, phone=NORMALIZED, amount=amount, account=account,
                          status=status, channel="api", active_phone=active,
                          created_at=utcnow() - timedelta(minutes=minutes_ago), **fields)


def test_first_hop_shows_the_main_menu(caller):
    body = caller().start()
    assert body == "CON Lipa M-Pesa\n1 Pay\n2 Payment status\n3 Recent payments\n4 Language/Lugha\n0 Exit"


def test_pay_flow_answers_before_the_push_which_then_reaches_the_simulator(app, caller, sim, rows):
    session = caller()
    assert session.dial("1").startswith("CON Enter account")
    assert session.send("12345").startswith("CON Enter amount")
    assert session.send("500") == ("CON Pay KES 500 to account 12345?\n1 Confirm\n2 Cancel\n0 Back")
    session.inputs.append("1")
    response = session.post(session.text, keep_open=True)  # not closed yet: the END is still "on its way"
    body = response.get_data(as_text=True)
    payment = Payment.get(Payment.phone_hash == NORMALIZED)
    assert body == f"END Wait for the M-Pesa prompt and enter your PIN to pay KES 500. Ref {payment.reference}"
    assert (payment.status, payment.amount, payment.account, payment.channel) == ("PENDING", 500, "12345", "ussd")
    assert payment.idempotency_key == f"ussd:{session.session_id}"
    assert sim.daraja.requests_log() == []  # nothing slow happened inside the request
    response.close()  # the END reached the caller: now the push goes out
    app.extensions["lipa"].tasks.drain()
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "PROCESSING" and payment.checkout_request_id
    [push] = sim.daraja.requests_log()
    assert (push["phone"], push["amount"], push["account"]) == (NORMALIZED, 500, "12345")
    assert SessionRow.get(SessionRow.session_id == session.session_id).payment_id == payment.id


def test_whole_text_in_one_hop_pays_500_to_account_12345(caller, rows):
    body = caller().post("1*12345*500*1").get_data(as_text=True)
    payment = Payment.get(Payment.phone_hash == NORMALIZED)
    assert body.startswith("END ") and payment.reference in body
    assert (payment.amount, payment.account) == (500, "12345")


def test_recorded_africastalking_hop_is_understood(client):
    body = client.post("/ussd", data=fixture_text("at_ussd_hop.txt"),
                       content_type="application/x-www-form-urlencoded").get_data(as_text=True)
    assert body == "CON Pay KES 500 to account 12345?\n1 Confirm\n2 Cancel\n0 Back"


@pytest.mark.parametrize("amount, reason", [
    ("0", "Amount must be from 1 to 250,000 KES."),
    ("250001", "Amount must be from 1 to 250,000 KES."),
    ("abc", "Amount must be a whole number of shillings."),
    ("12.5", "Amount must be a whole number of shillings."),
    ("", "Amount must be a whole number of shillings."),
])
def test_invalid_amount_asks_again_with_the_reason(caller, amount, reason):
    session = caller()
    expected = f"CON {reason}\nEnter amount in KES (whole shillings)\n00 Main menu"
    assert session.dial("1", "12345", amount) == expected
    assert session.send("250000").startswith("CON Pay KES 250,000 to account 12345?")


@pytest.mark.parametrize("account", ["ABCDEFGHIJKLM", "", "A B", "A#B"])
def test_invalid_account_asks_again_with_the_reason(caller, account):
    session = caller()
    body = session.dial("1", account)
    assert body == "CON Account must be 1-12 letters or digits.\nEnter account number or bill code\n0 Back"
    assert session.send("ab-1").startswith("CON Enter amount")


def test_payment_request_with_a_fixed_amount_skips_the_amount(caller, rows):
    req = PaymentRequest.create(code="123456", amount=750, account="INV42", status=RequestStatus.OPEN.value)
    session = caller()
    assert session.dial("1", "123456") == "CON Pay KES 750 to account INV42?\n1 Confirm\n2 Cancel\n0 Back"
    assert session.send("0").startswith("CON Enter account")  # back skips the amount it never asked
    session.send("123456")
    assert session.send("1").startswith("END Wait for the M-Pesa prompt")
    payment = Payment.get(Payment.phone_hash == NORMALIZED)
    assert (payment.amount, payment.account, payment.request_id) == (750, "INV42", req.id)


@pytest.mark.parametrize("status, reason", [
    (RequestStatus.PAID.value, "END Bill 123456 is already paid."),
    (RequestStatus.CANCELLED.value, "END Bill 123456 is no longer open."),
])
def test_closed_payment_request_ends_with_the_reason(caller, rows, status, reason):
    PaymentRequest.create(code="123456", amount=750, account="INV42", status=status)
    assert caller().dial("1", "123456") == reason
    assert Payment.select().count() == 0


@pytest.mark.parametrize("values, expected", [
    (("1", "0"), "CON Lipa M-Pesa"),
    (("1", "12345", "500", "0"), "CON Enter amount"),
    (("1", "12345", "500", "0", "00"), "CON Lipa M-Pesa"),
    (("1", "12345", "0"), "CON Amount must be from 1 to 250,000 KES."),  # a number is asked: 0 is an amount
    (("1", "12345", "00"), "CON Lipa M-Pesa"),
    (("1", "12345", "500", "00"), "CON Lipa M-Pesa"),
    (("3", "00"), "CON Lipa M-Pesa"),
    (("4", "0"), "CON Lipa M-Pesa"),
    (("1", "12345", "00", "1", "999", "700"), "CON Pay KES 700 to account 999?"),
])
def test_back_and_home(caller, values, expected):
    assert caller().dial(*values).startswith(expected)


def test_cancel_at_confirm_makes_no_payment(caller, rows):
    assert caller().dial("1", "12345", "500", "2") == "END Payment cancelled."
    assert Payment.select().count() == 0


def test_exit_and_invalid_choices(caller):
    assert caller().dial("0") == "END Thank you for using Lipa. Goodbye."
    menu_body = caller().dial("7")
    assert menu_body.startswith("CON Invalid choice.\nLipa M-Pesa\n1 Pay")
    assert caller().dial("1", "12345", "500", "5").startswith("CON Invalid choice.\nPay KES 500")
    assert caller().dial("4", "3").startswith("CON Invalid choice.\nChoose language")


def test_status_without_payments(caller):
    assert caller().dial("2") == "END You have no payments yet."


def test_status_shows_the_latest_payment_with_its_receipt(caller, rows):
    make_payment("LPOLD0001", "FAILED", amount=100, minutes_ago=10)
    make_payment("LPNEW0001", "COMPLETED", amount=1200, account="INV7", mpesa_receipt="QK12ABC3DE")
    body = caller().dial("2")
    assert body == "END Payment LPNEW0001: Paid\nKES 1,200 to account INV7\nM-Pesa receipt QK12ABC3DE"


def test_status_of_a_failed_payment_has_no_receipt(caller, rows):
    make_payment("LPFAIL001", "FAILED", amount=100)
    assert caller().dial("2") == "END Payment LPFAIL001: Failed\nKES 100 to account ACC1"


def test_history_pages_newest_first(caller, rows):
    for i in range(7):
        make_payment(f"LPHIST00{i}", "COMPLETED" if i % 2 else "FAILED", amount=100 + i, minutes_ago=70 - i)
    session = caller()
    first = session.dial("3")
    assert first == ("CON Recent payments\nLPHIST006 KES 106 Failed\nLPHIST005 KES 105 Paid\n"
                     "LPHIST004 KES 104 Failed\n98 More\n0 Back")
    assert "LPHIST003 KES 103 Paid" in session.send("98")
    last = session.send("98")
    assert last == "CON Recent payments\nLPHIST000 KES 100 Failed\n0 Back"
    assert session.send("98").startswith("CON Invalid choice.\nLPHIST000")
    assert session.send("0").startswith("CON Lipa M-Pesa")


def test_history_without_payments(caller):
    assert caller().dial("3") == "END You have no payments yet."


def test_language_switch_is_remembered_for_the_next_session_and_payments(caller, rows):
    assert caller().dial("4") == "CON Choose language\n1 English\n2 Kiswahili\n0 Back"
    assert caller().dial("4", "2") == "END Lugha imebadilishwa kuwa Kiswahili."
    assert PhonePreference.get(PhonePreference.phone_hash == NORMALIZED).language == "sw"
    assert caller().start() == ("CON Lipa M-Pesa\n1 Lipa\n2 Hali ya malipo\n3 Malipo ya hivi karibuni\n"
                                "4 Lugha/Language\n0 Ondoka")
    assert caller().dial("1").startswith("CON Weka nambari ya akaunti")
    assert caller().dial("1", "12345", "500").startswith("CON Lipa KES 500 kwa akaunti 12345?\n1 Thibitisha")
    assert caller().dial("1", "12345", "500", "1").startswith("END Subiri ombi la M-Pesa")
    assert Payment.get(Payment.phone_hash == NORMALIZED).language == "sw"
    assert caller().dial("4", "1") == "END Language set to English."
    assert "is waiting for your M-Pesa PIN.\n1 Pay\n2 Payment status" in caller().start()


def test_redial_shows_the_payment_waiting_for_its_pin(caller, rows):
    make_payment("LPWAIT001", "PROCESSING", amount=2500)
    body = caller().start()
    assert body == ("CON LPWAIT001 KES 2,500 is waiting for your M-Pesa PIN.\n1 Pay\n2 Payment status\n"
                    "3 Recent payments\n4 Language/Lugha\n0 Exit")


def test_second_payment_while_one_waits_ends_with_the_reason(caller, rows):
    make_payment("LPWAIT001", "PROCESSING", amount=2500)
    body = caller().dial("1", "12345", "500", "1")
    assert body == "END Payment LPWAIT001 is still waiting for M-Pesa. Finish it or wait."
    assert Payment.select().count() == 1


def test_duplicate_hop_gets_the_same_answer_and_one_payment(app, caller, sim, rows):
    session = caller()
    first = session.dial("1", "12345", "500", "1")
    again = session._body(session.post(session.text))
    assert again == first
    other_process = UssdSession(session.client, session_id=session.session_id).post("1*12345*500*1")
    assert other_process.get_data(as_text=True) == first
    app.extensions["lipa"].tasks.drain()
    assert Payment.select().count() == 1
    assert len(sim.daraja.requests_log()) == 1


def test_duplicate_after_the_session_row_is_lost_still_makes_one_payment(caller, rows):
    session = caller()
    first = session.dial("1", "12345", "500", "1")
    SessionRow.delete().execute()
    assert session._body(session.post(session.text)) == first
    assert Payment.select().count() == 1


def test_text_that_does_not_extend_the_stored_one_is_split(caller):
    session = caller()
    session.dial("1", "12345")
    assert session._body(session.post("1*777*300")).startswith("CON Pay KES 300 to account 777?")


def test_too_many_hops_end_the_session(caller):
    assert caller().post("*".join(["98"] * 40)).get_data(as_text=True) == "END Too many steps. Please dial again."


GARBAGE = [
    {"text": ""},
    {"text": "1" * 10_000},
    {"text": "\x00\xff"},
    {"text": "\U0001F600\U0001F4B8"},
    {"text": "***"},
    {"text": "1*" + "9" * 500},
    {"text": "1*12345*" + "\U0001F600"},
    {"text": "1*\x00*500"},
    {"sessionId": None},
    {"sessionId": "x" * 500},
    {"phoneNumber": None},
    {"phoneNumber": "abc"},
    {"phoneNumber": "+15555550100"},
    {"text": None, "serviceCode": None, "networkCode": None},
]


@pytest.mark.parametrize("override", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_gets_a_short_answer(client, override):
    data = {"sessionId": f"ATUid_junk_{next(_ids)}", "serviceCode": "*384*123#", "phoneNumber": PHONE,
            "networkCode": "63902", "text": ""}
    data.update(override)
    data = {key: value for key, value in data.items() if value is not None}
    response = client.post("/ussd", data=data)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert body.startswith(("CON ", "END ")) and len(body) <= 160 and "Traceback" not in body


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe\x00", b"sessionId=%FF%FE&phoneNumber=%2B254712345678&text=%FF*%00",
                                 b"text=1&text=2&sessionId=a&sessionId=b&phoneNumber=%2B254712345678"])
def test_undecodable_bodies_get_a_short_answer(client, raw):
    response = client.post("/ussd", data=raw, content_type="application/x-www-form-urlencoded")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.startswith(("CON ", "END ")) and len(body) <= 160


def test_missing_fields_and_bad_phone_end(client):
    assert client.post("/ussd", data={"text": ""}).get_data(as_text=True).startswith("END ")
    body = client.post("/ussd", data={"sessionId": "s1", "phoneNumber": "abc", "text": ""}).get_data(as_text=True)
    assert body == "END Sorry, this phone number cannot use Lipa."


def test_body_too_large_still_answers_end(client):
    response = client.post("/ussd", data={"sessionId": "big", "phoneNumber": PHONE, "text": "1" * 70_000})
    assert response.status_code == 200 and response.get_data(as_text=True).startswith("END ")


def test_unexpected_error_becomes_a_short_end_and_is_logged_masked(client, monkeypatch, caplog):
    def broken(hop):
        raise RuntimeError("boom")

    monkeypatch.setattr("gateway.ussd.views.handle", broken)
    with caplog.at_level(logging.ERROR, logger="gateway.ussd.views"):
        response = client.post("/ussd", data={"sessionId": "s1", "phoneNumber": PHONE, "text": ""})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "END Sorry, something went wrong. Please try again."
    assert "254712***678" in caplog.text and "254712345678" not in caplog.text


def test_a_star_is_always_the_separator(caller):
    """Screens are derived from Africa's Talking's text alone, so '*' separates inputs (no account has one)."""
    session = caller()
    session.start()
    assert session._body(session.post("1*AB*1")).startswith("CON Pay KES 1 to account AB?")


def test_session_of_another_phone_never_gets_its_payment(caller):
    session = caller()
    session.dial("1", "12345", "500", "1")
    other = UssdSession(session.client, phone="+254722000111", session_id=session.session_id)
    assert other._body(other.post("1*12345*500*1")) == "END Sorry, something went wrong. Please try again."
    assert Payment.select().count() == 1


def test_a_hop_that_creates_nothing_writes_nothing(caller):
    session = caller()
    session.dial("1", "12345", "500")
    session.start()
    session.send("3")
    assert SessionRow.select().count() == 0 and Payment.select().count() == 0
    session.dial("1", "12345", "500", "1")
    assert SessionRow.select().count() == 1  # the hop that made the payment: its hop log


def test_session_events_answer_ok(client):
    form = {"date": "2024-05-01 10:00:00", "sessionId": "ATUid_1", "serviceCode": "*384*123#",
            "networkCode": "63902", "phoneNumber": PHONE, "status": "Incomplete", "cost": "KES 0.00",
            "durationInMillis": "12000", "hopsCount": "3", "input": "1*12345", "lastAppResponse": "CON Enter"}
    response = client.post("/ussd/events", data=form)
    assert (response.status_code, response.get_data(as_text=True)) == (200, "OK")
    junk = client.post("/ussd/events", data=b"\xff\x00", content_type="application/x-www-form-urlencoded")
    assert (junk.status_code, junk.get_data(as_text=True)) == (200, "OK")


@pytest.mark.parametrize("last_text, stored, text, expected", [
    (None, None, "", []),
    (None, None, "1*AB*1", ["1", "AB", "1"]),
    ("", [], "1", ["1"]),
    ("", [], "1*2", ["1*2"]),
    ("1", ["1"], "1*AB*1", ["1", "AB*1"]),
    ("1*AB*1", ["1", "AB*1"], "1*AB*1*500", ["1", "AB*1", "500"]),
    ("1*2", ["1", "2"], "3*4", ["3", "4"]),
    ("1", ["1"], "1*", ["1", ""]),
])
def test_inputs_follow_the_stored_history(last_text, stored, text, expected):
    row = None if last_text is None else SessionRow(last_text=last_text, inputs=stored)
    assert sessions.inputs_for(row, text) == expected


def test_replay_stops_at_the_first_closing_screen(app, rows):
    caller = menu.Caller(NORMALIZED, "en")
    assert menu.replay(["0", "1", "12345"], caller).step == menu.EXIT
    assert menu.replay(["1", "12345", "500"], caller).amount == 500


class _Statements:
    """Every statement the database runs while counting (peewee's one door: Database.execute_sql)."""

    def __init__(self, monkeypatch):
        self.sql: list[str] = []
        original = db.obj.execute_sql

        def counted(sql, params=None, *args, **kwargs):
            self.sql.append(sql)
            return original(sql, params, *args, **kwargs)

        monkeypatch.setattr(db.obj, "execute_sql", counted)


@pytest.mark.parametrize("text, expected", [
    ("", 1), ("1", 1), ("1*KPLC42", 1), ("1*KPLC42*500", 1), ("4", 1),
    ("1*12345", 2), ("1*12345*500", 2),  # an all-digit account may be a bill's code: its indexed look-up
    ("3", 2),  # the history also reads the payments it lists
])
def test_an_intermediate_hop_is_at_most_two_indexed_reads(caller, rows, monkeypatch, text, expected):
    """Language and the waiting payment come together in one read; nothing is written."""
    make_payment("LP-WAIT", status="PENDING", amount=300)
    session = caller()
    statements = _Statements(monkeypatch)
    session.post(text)
    reads = [sql for sql in statements.sql if sql.lstrip().upper().startswith("SELECT")]
    others = [sql for sql in statements.sql if sql not in reads and not sql.upper().startswith(("BEGIN", "SET"))]
    assert others == []
    assert len(reads) == expected, reads


def test_the_main_menu_still_shows_the_waiting_payment_in_the_chosen_language(caller, rows):
    PhonePreference.create(phone=NORMALIZED, language="sw")
    make_payment("LP-WAIT", status="PENDING", amount=300)
    body = caller().start()
    assert "LP-WAIT" in body and "300" in body and "Lipa" in body
    assert body != caller(phone="+254722000111").start()


def test_a_later_hop_of_a_session_reads_only_what_its_screen_needs(caller, rows, monkeypatch):
    """The session's first hop reads the language and the waiting payment; its later hops answer from the
    app's memory of that session's language, so an intermediate screen runs no statement at all, and a hop
    back to the main menu reads only the waiting payment it shows."""
    PhonePreference.create(phone=NORMALIZED, language="sw")
    make_payment("LP-WAIT", status="PENDING", amount=300)
    session = caller()
    statements = _Statements(monkeypatch)
    first = session.start()
    assert len(statements.sql) == 1 and "LP-WAIT" in first
    for text in ("1", "1*KPLC42", "1*KPLC42*500"):
        statements.sql.clear()
        body = session._body(session.post(text))
        assert statements.sql == [] and body.startswith("CON"), (text, statements.sql)
    fresh = caller()
    assert "KPLC42" in body and body == fresh._body(fresh.post("1*KPLC42*500"))  # as a fresh read shows it
    statements.sql.clear()
    home = session._body(session.post("1*KPLC42*500*00"))
    assert home == first and len(statements.sql) == 1, statements.sql


def test_another_phone_on_the_same_session_id_reads_its_own_language(caller, rows):
    PhonePreference.create(phone=NORMALIZED, language="sw")
    session = caller()
    swahili = session._body(session.post("1"))
    other = UssdSession(session.client, phone="+254722000111", session_id=session.session_id)
    english = other._body(other.post("1"))
    fresh = caller(phone="+254722000111")
    assert swahili != english and english == fresh._body(fresh.post("1"))
