"""Every SMS template, in both languages, at its longest values, fits one GSM-7 segment."""
import pytest

from gateway.providers.daraja.result_codes import RESULTS
from gateway.texts.notify import MESSAGE_KINDS, REASON_MAX, REASONS_SW, TEMPLATES, reason_for, render
from shared.gsm import gsm7_length, is_gsm7

LONGEST = {"amount": 250_000, "account": "W" * 12, "ref": "LPWWWWWWW", "receipt": "W" * 10}


def longest_reasons(lang):
    english = [words for _, words in RESULTS.values()] + ["x" * 200]
    codes = list(RESULTS) + list(REASONS_SW) + [None, "99999"]
    return {reason_for(lang, code, msg) for code in codes for msg in english}


@pytest.mark.parametrize("lang", list(TEMPLATES))
@pytest.mark.parametrize("kind", MESSAGE_KINDS)
def test_every_template_fits_one_segment(lang, kind):
    for reason in sorted(longest_reasons(lang), key=len, reverse=True)[:3]:
        text = render(kind, lang, reason=reason, **LONGEST)
        assert is_gsm7(text) and gsm7_length(text) <= 160, (lang, kind, len(text), text)


def test_both_languages_have_the_same_templates():
    assert set(TEMPLATES["en"]) == set(TEMPLATES["sw"])


def test_reasons_are_cut_and_transliterated():
    assert len(reason_for("en", None, "é" * 300)) == REASON_MAX
    assert is_gsm7(reason_for("en", None, "Café ☕ closed"))
    assert reason_for("sw", "1", "Not enough money in M-Pesa.") == "Salio la M-Pesa halitoshi."


def test_non_gsm_data_never_switches_to_ucs2():
    text = render("payment_completed", "en", amount=10, account="Zoë☕", ref="LP1234567", receipt="ÑLJ7RT61SV")
    assert is_gsm7(text) and "Zoe?" in text


def test_receipt_sms_carries_the_receipt():
    text = render("payment_completed", "en", amount=1200, account="INV7", ref="LPABCDEFG", receipt="NLJ7RT61SV")
    assert "KES 1,200" in text and "NLJ7RT61SV" in text and "LPABCDEFG" in text and "INV7" in text
