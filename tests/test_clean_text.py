"""Clean text at the edge (issue 12, item 5): hostile strings from providers and callers never reach a
receipt, a screen, an SMS or the desktop as control characters or extra lines. The inbox keeps them raw."""
from __future__ import annotations

import json

import pytest

from admin_app.core.models import Payment as DesktopPayment
from gateway.payments.requests import create_request
from gateway.reconciliation.statement import parse
from gateway.texts import notify as notify_texts
from gateway.texts import sms as sms_texts
from gateway.texts import ussd as ussd_texts
from shared.models import InboxMessage, Payment
from shared.receipts import receipt_data, render_pdf, render_text
from shared.text import clean, is_clean
from tests.factories import c2b_body, confirm, make_payment, paid_body, post
from tests.helpers import pdf_text, staff_headers

FORGED = "X\nAMOUNT KES 99999"
HOSTILE = [
    FORGED,
    "A\r\nB",
    "ESC\x1b[2Jcleared",  # a thermal printer's (and a terminal's) escape sequence
    "bell\x07\x00nul",
    "\u202eKES 001",  # right-to-left override: "100 SEK" on screen
    "zero\u200bwidth\ufeffmarks",
    "line\u2028sep\u2029para",
    "tab\there\x0bvt\x0cff",
    "c1\x85\x9bcontrols",
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_clean_leaves_one_printable_line(raw):
    text = clean(raw)
    assert text and is_clean(text)
    assert all(ch.isprintable() for ch in text), repr(text)
    assert "\u202e" not in text and "\x1b" not in text


def test_clean_keeps_ordinary_text_and_caps_length():
    assert clean("  Jane  W  Doe ") == "Jane W Doe"
    assert clean("Mama Mboga — Ksh") == "Mama Mboga — Ksh"
    assert clean("A\nB") == "A B"
    assert clean("x" * 50, 20) == "x" * 20
    assert clean(None) == "" and clean(42) == "42"


@pytest.fixture
def lipa(make_app):
    from shared.db import db

    app = make_app()
    db.connect(reuse_if_open=True)
    yield app
    if not db.is_closed():
        db.close()


def test_c2b_keeps_the_raw_body_but_the_payment_keeps_clean_text(lipa):
    confirm(lipa, c2b_body(BillRefNumber=FORGED, FirstName="MARY\x1b[31m", MiddleName="\u202eW", LastName="DOE\n"))
    payment = Payment.get()
    assert is_clean(payment.account) and "\n" not in payment.account
    assert payment.payer_name == "MARY[31m W DOE"
    assert json.loads(InboxMessage.get().body)["BillRefNumber"] == FORGED  # the evidence, as received


def test_receipts_print_no_forged_line_and_no_escape_bytes(lipa):
    """A row an older gateway stored with raw text: the receipt cleans every field as it renders it."""
    payment = make_payment("COMPLETED", account=FORGED, mpesa_receipt="QK1\x1b[2J")
    data = receipt_data(payment, 1, copy=False, merchant_name="Shop\nAMOUNT KES 1")
    for width in (32, 48):
        text = render_text(data, width)
        assert "\x1b" not in text
        assert [line for line in text.splitlines() if line.startswith("AMOUNT")] == ["AMOUNT" + " " * (
            width - len("AMOUNT") - len("KES 500")) + "KES 500"]
    shown = pdf_text(render_pdf(data))
    assert "\x1b" not in shown and "AMOUNT KES 1\n" not in shown


def test_receipt_route_serves_the_clean_text(lipa):
    heads = staff_headers(("viewer",))
    payment = make_payment("COMPLETED", account=FORGED, mpesa_receipt="QK12ABC34D")
    response = lipa.test_client().get(f"/api/v1/payments/{payment.id}/receipt", headers=heads["viewer"],
                                      query_string={"format": "text"})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert sum(line.startswith("AMOUNT") for line in body.splitlines()) == 1 and "\x1b" not in body


def test_stk_callback_result_text_is_cleaned(lipa):
    payment = make_payment("PROCESSING")
    body = paid_body(receipt="NLJ7RT61SV\n\x1bX")
    body["Body"]["stkCallback"]["ResultDesc"] = "Done\r\nAMOUNT KES 99999\x1b"
    assert post(lipa.test_client(), lipa, body).status_code == 200
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "COMPLETED"
    assert is_clean(payment.mpesa_receipt) and is_clean(payment.result_desc) and "\n" not in payment.status_message


def test_payment_request_description_is_cleaned(lipa):
    req = create_request(amount=100, account="INV1", description="Shoes\n\x1bAMOUNT KES 1")
    assert req.description == "Shoes AMOUNT KES 1"


def test_statement_lines_are_cleaned():
    csv = ("Receipt No.,Completion Time,Details,Transaction Status,Paid In,Withdrawn,Balance,Other Party Info\n"
           "QK12ABC34D,2024-05-01 11:03:00,\"Pay Bill from 254712345678 - MARY\x1b W\nAcc. INV1\",Completed,"
           "100.00,,100.00,\"MARY\u202e W\"\n")
    line = parse(csv.encode()).lines[0]
    assert is_clean(line.details) and is_clean(line.other_party) and is_clean(line.account)


@pytest.mark.parametrize("raw", HOSTILE)
def test_every_customer_text_is_one_clean_screen(raw):
    """USSD screens and SMS (replies and notifications) render stored account text as one clean line."""
    texts = [
        ussd_texts.confirm("en", 500, raw),
        ussd_texts.status("en", ref="LP1", state="COMPLETED", amount=500, account=raw, receipt=raw),
        sms_texts.status("en", ref="LP1", state="COMPLETED", amount=500, account=raw, receipt=raw),
        notify_texts.render("payment_completed", "en", amount=500, account=raw, ref="LP1", receipt=raw),
    ]
    for text in texts:
        body = text.split(" ", 1)[1] if text.startswith(("CON ", "END ")) else text
        for fragment in (raw, "\x1b", "\u202e", "\x00", "\x07"):
            if fragment.strip() and not is_clean(fragment):
                assert fragment not in body, (text, fragment)


def test_the_desktop_cleans_what_the_api_sends():
    p = DesktopPayment.from_json({"id": 1, "reference": "LP1\x1b", "phone": "254712***678", "amount": 5,
                                  "account": FORGED, "status": "COMPLETED", "status_message": "a\nb",
                                  "flag_reason": "\u202eevil"})
    assert (p.account, p.status_message, p.flag_reason, p.reference) == ("X AMOUNT KES 99999", "a b", "evil", "LP1")
