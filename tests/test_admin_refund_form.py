"""The refund form's rules (Qt-free): the maximum, the amount typed, the reason categories, the detail lines."""
import pytest

from admin_app.core.models import Payment
from admin_app.core.refund_form import Refundable, check_amount, reason_text, refund_line

PAID = Payment.from_json({"id": 1, "reference": "LP1", "phone": "254712***678", "amount": 1000, "account": "A",
                          "status": "COMPLETED", "refunded_amount": 300})


def test_the_maximum_leaves_out_refunded_and_refunds_on_their_way():
    money = Refundable.of(PAID, [{"amount": 200, "status": "PROCESSING"}, {"amount": 100, "status": "INITIATED"},
                                 {"amount": 999, "status": "FAILED"}, {"amount": 300, "status": "COMPLETED"}])
    assert (money.paid, money.refunded, money.in_flight, money.maximum) == (1000, 300, 300, 400)


@pytest.mark.parametrize("text,expected", [
    ("400", (400, "")), (" 1,000 ", (None, "At most KES 400 can be refunded.")), ("KES 5", (5, "")),
    ("5000", (None, "At most KES 400 can be refunded.")), ("0", (None, "The amount must be at least KES 1.")),
    ("12.50", (None, "Whole shillings only (no cents).")), ("", (None, "Type the amount to refund.")),
    ("-5", (None, "Whole shillings only (no cents).")),
])
def test_the_amount_is_refused_never_changed(text, expected):
    assert check_amount(text, 400) == expected


def test_reasons():
    assert reason_text("duplicate", "") == ("Duplicate payment", "")
    assert reason_text("fraudulent", " stolen  phone ") == ("Fraudulent: stolen phone", "")
    assert reason_text("other", " ")[0] is None and reason_text("nope", "x")[0] is None
    assert reason_text("other", "goods returned") == ("Other: goods returned", "")


def test_a_refund_line_in_plain_words():
    line = refund_line({"id": 3, "amount": 2500, "status": "FAILED", "reason": "Duplicate payment",
                        "result_desc": "Insufficient\nfunds", "updated_at": "2026-12-02T07:03:00Z"})
    assert line == "#3 · KES 2,500 · failed · M-Pesa: Insufficient funds · Duplicate payment · 2026-12-02 10:03:00 EAT"
