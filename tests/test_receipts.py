"""shared.receipts: amounts in words, thermal text that fits the paper, and the PDF."""
import re
from datetime import datetime
from types import SimpleNamespace

import pytest

from shared.receipts import amount_in_words, number_in_words, receipt_data, render_pdf, render_text

PAYMENT = {"amount": 20500, "reference": "LP7K3M9QX", "mpesa_receipt": "QK12ABC34D", "account": "ADM1042",
           "phone": "254712345678", "status": "COMPLETED", "completed_at": "2024-05-01T11:03:00Z",
           "created_at": "2024-05-01T11:02:10Z"}
LONG_NAME = "Mama Njeri Wholesale and Retail General Supplies of Kariobangi North Limited"


@pytest.mark.parametrize("amount,words", [
    (1, "One shilling only"), (15, "Fifteen shillings only"), (100, "One hundred shillings only"),
    (1_001, "One thousand and one shillings only"), (20_500, "Twenty thousand five hundred shillings only"),
    (250_000, "Two hundred and fifty thousand shillings only"), (21, "Twenty-one shillings only"),
    (115, "One hundred and fifteen shillings only"), (2_050, "Two thousand and fifty shillings only"),
    (99_999, "Ninety-nine thousand nine hundred and ninety-nine shillings only"),
])
def test_amount_in_words(amount, words):
    assert amount_in_words(amount) == words


@pytest.mark.parametrize("bad", [-1, 1_000_000, 1.5, True, "5"])
def test_number_in_words_refuses_what_it_cannot_write(bad):
    with pytest.raises(ValueError):
        number_in_words(bad)


def test_data_from_api_json_and_from_a_row_agree():
    row = SimpleNamespace(**{**PAYMENT, "completed_at": datetime(2024, 5, 1, 11, 3), "created_at": None})
    from_json, from_row = receipt_data(PAYMENT, 42, False, "Shop"), receipt_data(row, 42, False, "Shop")
    assert from_json == from_row
    assert from_json.date == "2024-05-01 14:03 EAT" and from_json.phone == "254712***678"
    assert from_json.number == "000042" and receipt_data(PAYMENT, 1, False, "").merchant == "Lipa"


@pytest.mark.parametrize("width", [32, 48])
@pytest.mark.parametrize("copy", [False, True])
def test_text_fits_the_paper(width, copy):
    text = render_text(receipt_data(PAYMENT, 42, copy, LONG_NAME), width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    joined = " ".join(line.strip() for line in lines)
    for needle in ("000042", "QK12ABC34D", "LP7K3M9QX", "ADM1042", "254712***678", "KES 20,500",
                   "2024-05-01 14:03 EAT", "Twenty thousand five hundred shillings only", "Kariobangi"):
        assert needle in joined
    assert ("COPY" in text) is copy


def test_text_refuses_other_widths():
    with pytest.raises(ValueError):
        render_text(receipt_data(PAYMENT, 1, False, "Shop"), 40)


def test_pdf_carries_number_words_and_copy():
    plain = render_pdf(receipt_data(PAYMENT, 42, False, LONG_NAME), compress=False)
    copy = render_pdf(receipt_data(PAYMENT, 42, True, "Duka la Ümit ☕"), compress=False)
    assert plain.startswith(b"%PDF") and copy.startswith(b"%PDF")
    shown = b" ".join(re.findall(rb"\((.*?)\) ?Tj", plain))
    assert b"000042" in shown and b"Twenty thousand five hundred shillings only" in shown and b"COPY" not in shown
    assert b"COPY" in copy
    assert render_pdf(receipt_data(PAYMENT, 42, True, "Shop")).startswith(b"%PDF")
