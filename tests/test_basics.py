"""Money, phone numbers, GSM-7, references and log masking."""
import logging

import pytest

from shared.errors import InvalidInput
from shared.gsm import gsm7_length, is_gsm7, to_gsm7
from shared.logsafe import PhoneMaskFilter, mask_text
from shared.money import format_kes, parse_amount, provider_amount
from shared.phone import mask_phone, normalize_phone
from shared.refs import payment_reference, request_code


@pytest.mark.parametrize("raw,expected", [
    (500, 500), ("500", 500), ("500.00", 500), ("1,200", 1200), (" 7 ", 7), (250000, 250000), (1.0, 1),
])
def test_amounts_accepted(raw, expected):
    assert parse_amount(raw) == expected


@pytest.mark.parametrize("raw", [0, -5, 250001, "12.5", "abc", "", None, True, 1.5, "1e3", "٣", "5 00"])
def test_amounts_refused(raw):
    with pytest.raises(InvalidInput):
        parse_amount(raw)


def test_provider_amounts():
    assert provider_amount(1.00) == 1
    assert provider_amount("10.00") == 10
    assert provider_amount("1,020.00") == 1020
    assert provider_amount(1.5) is None
    assert provider_amount("x") is None
    assert format_kes(250000) == "KES 250,000"


@pytest.mark.parametrize("raw", ["0712345678", "+254712345678", "254712345678", "0112345678",
                                 "+254 712 345 678", "712345678"])
def test_phones_normalised(raw):
    assert normalize_phone(raw) in ("254712345678", "254112345678")


@pytest.mark.parametrize("raw", ["", "abc", "12345", "+255712345678", "0202345678", "07123456789", None, "+" * 30])
def test_phones_refused(raw):
    with pytest.raises(InvalidInput):
        normalize_phone(raw)


def test_masking():
    assert mask_phone("254712345678") == "254712***678"
    assert mask_text("from 254712345678 and +254712345678 and 0712345678") == (
        "from 254712***678 and +254712***678 and 0712***678")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "phone %s", ("254712345678",), None)
    PhoneMaskFilter().filter(record)
    assert record.getMessage() == "phone 254712***678"


def test_gsm7():
    assert is_gsm7("CON Karibu Lipa @ KES 1,200")
    assert not is_gsm7("Café ☕")
    assert to_gsm7("Zoë Ñandú ☕") == "Zoe Ñandu ?"
    assert is_gsm7(to_gsm7("Ğüçlü Łódź"))
    assert gsm7_length("[x]") == 5


def test_references():
    refs = {payment_reference() for _ in range(200)}
    assert len(refs) == 200
    assert all(len(r) == 9 and r.startswith("LP") and not set(r[2:]) & set("ILOU") for r in refs)
    assert all(len(request_code()) == 6 for _ in range(50))
