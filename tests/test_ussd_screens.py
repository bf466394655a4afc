"""Every USSD screen, in both languages, at the longest values it can hold: <= 160 characters, GSM-7 only.

Data-driven: the screens are built from texts.TEMPLATES, and the last test fails when a template was
never rendered here, so a new screen cannot be forgotten.
"""
from __future__ import annotations

import re
import string

import pytest

from gateway.ussd import menu, views
from gateway.texts import ussd as texts
from shared.gsm import is_gsm7
from shared.money import MAX_AMOUNT
from shared.states import PaymentStatus

LONGEST = {
    "ref": "LPWWWWWWW",  # LP + 7: shared.refs.payment_reference
    "amount": MAX_AMOUNT,
    "account": "ABCDEFGHIJKLMNOPQRST",  # 20: a C2B account is longer than the 12 a USSD caller may type
    "receipt": "QWERTYUIOPASDFGHJKLZXCVBNM",  # M-Pesa sends 10; anything longer is cut
    "code": "123456789012",  # PaymentRequest.code max_length
}
STATUSES = [s.value for s in PaymentStatus] + ["SOMETHING_NEW"]
ERROR_KEYS = sorted(key for key in texts.TEMPLATES["en"] if key.startswith("err."))
CLOSING_KEYS = ["cancelled", "no_payments", "goodbye", "too_many_steps", "failure", "bad_phone",
                "language_set"]


def note(lang: str, key: str) -> str:
    """A notice line rendered with the longest values any template takes."""
    return texts.t(lang, key, ref=LONGEST["ref"], code=LONGEST["code"])


def choice_notes(lang: str):
    return [None, texts.t(lang, "invalid_choice")]


def every_screen(lang: str):
    """(name, screen) for every screen the menu can show, each at its longest."""
    ref, amount, account = LONGEST["ref"], LONGEST["amount"], LONGEST["account"]
    for resume in (None, (ref, amount)):
        for line in choice_notes(lang):
            yield "main", texts.main_menu(lang, resume=resume, note=line)
    for key in [None, *ERROR_KEYS]:
        line = note(lang, key) if key else None
        yield f"account {key}", texts.ask_account(lang, line)
        yield f"amount {key}", texts.ask_amount(lang, line)
    for line in choice_notes(lang):
        yield "confirm", texts.confirm(lang, amount, account, line)
        yield "language", texts.language_menu(lang, line)
    yield "pay_started", texts.pay_started(lang, amount, ref)
    for state in STATUSES:
        for receipt in (None, LONGEST["receipt"]):
            yield f"status {state}", texts.status(lang, ref=ref, state=state, amount=amount,
                                                  account=account, receipt=receipt)
        for more in (False, True):
            for line in choice_notes(lang):
                rows = [(ref, amount, state)] * menu.PAGE_SIZE
                yield f"history {state}", texts.history(lang, rows, more=more, note=line)
    for key in CLOSING_KEYS:
        yield key, texts.message(lang, key)
    for key in ERROR_KEYS:
        yield f"refused {key}", texts.end(note(lang, key))


@pytest.fixture
def rendered(monkeypatch):
    """Records every (language, template key) the builders render."""
    seen: set[tuple[str, str]] = set()
    original = texts.t

    def recording(lang, key, **values):
        seen.add((lang, key))
        return original(lang, key, **values)

    monkeypatch.setattr(texts, "t", recording)
    return seen


@pytest.mark.parametrize("lang", texts.LANGUAGES)
def test_every_screen_fits_one_gsm7_page(lang, rendered):
    screens = list(every_screen(lang))
    assert len(screens) > 50
    for name, screen in screens:
        assert screen.startswith(("CON ", "END ")), name
        assert len(screen) <= texts.SCREEN_MAX, f"{lang} {name}: {len(screen)} chars\n{screen}"
        assert is_gsm7(screen), f"{lang} {name} is not GSM-7: {screen!r}"
        assert all(ch in string.printable for ch in screen), f"{lang} {name} is not plain ASCII"
        assert "{" not in screen and "}" not in screen, f"{lang} {name} has an unfilled placeholder"


@pytest.mark.parametrize("lang", texts.LANGUAGES)
def test_every_template_is_rendered_by_some_screen(lang, rendered):
    list(every_screen(lang))
    missing = sorted(key for key in texts.TEMPLATES[lang] if (lang, key) not in rendered)
    assert not missing, f"templates no screen above renders: {missing}"


def test_both_languages_have_the_same_templates_and_placeholders():
    english, kiswahili = texts.TEMPLATES["en"], texts.TEMPLATES["sw"]
    assert english.keys() == kiswahili.keys()
    for key in english:
        assert set(re.findall(r"{(\w+)}", english[key])) == set(re.findall(r"{(\w+)}", kiswahili[key])), key
    assert english["main_options"] != kiswahili["main_options"]


def test_menu_option_numbers_are_the_same_in_both_languages():
    for lang in texts.LANGUAGES:
        options = [line.split(" ", 1)[0] for line in texts.t(lang, "main_options").splitlines()]
        assert options == ["1", "2", "3", "4", "0"]
        assert options[:-1] == list(menu.MAIN_OPTIONS)[:-1]


def test_every_payment_status_has_words():
    for lang in texts.LANGUAGES:
        for status in PaymentStatus:
            assert texts.status_word(lang, status.value) != status.value
            assert texts.status_word(lang, status.value, short=True) != status.value


def test_every_error_code_maps_to_a_template():
    for key in texts.ERROR_KEYS.values():
        assert key in texts.TEMPLATES["en"]


def test_failure_answer_of_the_view():
    assert views.FAILURE == "END Sorry, something went wrong. Please try again."
    assert len(views.FAILURE) <= texts.SCREEN_MAX and is_gsm7(views.FAILURE)


@pytest.mark.parametrize("raw", ["Akaunti ya Wanjikú", "\U0001F600" * 50, "x" * 500, "a\u200bb"])
def test_fit_guards_any_data(raw):
    screen = texts.fit("CON " + raw)
    assert len(screen) <= texts.SCREEN_MAX and is_gsm7(screen)
    assert is_gsm7(texts.shown(raw)) and len(texts.shown(raw)) <= texts.SHOWN_MAX
