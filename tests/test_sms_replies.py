"""Every SMS reply, in both languages, at the longest values it can hold: one GSM-7 segment (<= 160).

Data-driven: the replies are built from replies.TEMPLATES through the builders, and a test fails when a
template (or a USSD refusal reason the replies reuse) was never rendered here.
"""
from __future__ import annotations

import re

import pytest

from gateway.sms import commands
from gateway.texts import sms as replies
from gateway.texts import ussd as texts
from shared.gsm import gsm7_length, is_gsm7
from shared.money import MAX_AMOUNT
from shared.states import PaymentStatus

LONGEST = {
    "ref": "LPWWWWWWW",  # LP + 7: shared.refs.payment_reference
    "amount": MAX_AMOUNT,  # KES 250,000
    "account": "ABCDEFGHIJKLMNOPQRST",  # a C2B account (20) is longer than the 12 shown
    "receipt": "QWERTYUIOPASDFGHJKLZ",  # M-Pesa sends 10; anything longer is cut
    "code": "123456789012",  # PaymentRequest.code max_length
    "typed": "Ñ€[]{}\U0001F600" * 20,  # whatever a customer types after STATUS
}
STATUSES = [s.value for s in PaymentStatus] + ["SOMETHING_NEW"]
REASON_KEYS = sorted(key for key in texts.TEMPLATES["en"] if key.startswith("err."))
PLAIN_KEYS = ["help", "unknown", "no_payments", "pay_usage", "stopped", "started"]


def every_reply(lang: str):
    """(name, reply) for every reply the SMS channel can send, each at its longest."""
    ref, amount, account, receipt = LONGEST["ref"], LONGEST["amount"], LONGEST["account"], LONGEST["receipt"]
    for state in STATUSES:
        for with_receipt in (None, receipt):
            yield f"status {state}", replies.status(lang, ref=ref, state=state, amount=amount, account=account,
                                                    receipt=with_receipt)
        yield f"history {state}", replies.history(lang, [(ref, amount, state)] * (replies.HISTORY_MAX + 2))
    yield "history mixed", replies.history(lang, [(ref, amount, s) for s in STATUSES])
    for typed in (ref, LONGEST["typed"], LONGEST["account"]):
        yield f"not_found {typed[:5]}", replies.not_found(lang, typed)
    yield "pay_started", replies.pay_started(lang, amount=amount, account=account, ref=ref)
    for key in REASON_KEYS:
        yield f"refused {key}", replies.refused(lang, key, ref=ref, code=LONGEST["code"])
    yield "bill_amount", replies.bill_amount(lang, code=LONGEST["code"], amount=amount)
    for key in PLAIN_KEYS:
        yield key, replies.message(lang, key)


@pytest.fixture
def rendered(monkeypatch):
    """Records every (language, template key) rendered, SMS templates and the USSD reasons alike."""
    seen: set[tuple[str, str]] = set()
    for module in (replies, texts):
        monkeypatch.setattr(module, "t", _recording(module.t, seen))
    return seen


def _recording(original, seen):
    def recording(lang, key, **values):
        seen.add((lang, key))
        return original(lang, key, **values)

    return recording


@pytest.mark.parametrize("lang", texts.LANGUAGES)
def test_every_reply_fits_one_gsm7_segment(lang, rendered):
    sent = list(every_reply(lang))
    assert len(sent) > 40
    for name, reply in sent:
        assert is_gsm7(reply), f"{lang} {name} is not GSM-7: {reply!r}"
        assert gsm7_length(reply) <= replies.SMS_MAX, f"{lang} {name}: {gsm7_length(reply)} septets\n{reply}"
        assert "{" not in reply and "}" not in reply, f"{lang} {name} has an unfilled placeholder"
        assert reply.strip() == reply and reply


@pytest.mark.parametrize("lang", texts.LANGUAGES)
def test_every_template_is_rendered_by_some_reply(lang, rendered):
    list(every_reply(lang))
    missing = sorted(key for key in replies.TEMPLATES[lang] if (lang, key) not in rendered)
    missing += sorted(key for key in REASON_KEYS if (lang, key) not in rendered)
    assert not missing, f"templates no reply above renders: {missing}"


@pytest.mark.parametrize("lang", texts.LANGUAGES)
def test_templates_fit_without_the_guard(lang):
    """fit() is a last resort: the templates themselves must fit at their longest values."""
    for name, reply in every_reply(lang):
        if name.startswith("history"):
            continue  # built from lines; covered by the next test
        assert replies.fit(reply) == reply, name
    lines = [(LONGEST["ref"], LONGEST["amount"], "REFUND_PENDING")] * replies.HISTORY_MAX
    title = replies.t(lang, "history_title")
    body = "\n".join([title, *(replies.t(lang, "history_line", ref=r, amount=f"KES {a:,}",
                                         status=texts.status_word(lang, s, short=True)) for r, a, s in lines)])
    assert gsm7_length(body) <= replies.SMS_MAX


def test_both_languages_have_the_same_templates_and_placeholders():
    english, kiswahili = replies.TEMPLATES["en"], replies.TEMPLATES["sw"]
    assert english.keys() == kiswahili.keys()
    for key in english:
        assert set(re.findall(r"{(\w+)}", english[key])) == set(re.findall(r"{(\w+)}", kiswahili[key])), key


@pytest.mark.parametrize("lang", texts.LANGUAGES)
def test_help_names_every_command_in_its_language(lang):
    words = {word for word, (_, alias_lang) in commands.ALIASES.items() if (alias_lang or "en") == lang}
    for word in words - {"HELP", "MSAADA"}:
        assert word in replies.t(lang, "help"), word
    assert ("HELP" if lang == "en" else "MSAADA") in replies.t(lang, "unknown")


@pytest.mark.parametrize("raw", ["Akaunti ya Wanjikú", "\U0001F600" * 200, "x" * 500, "[]" * 120, "a\u200bb"])
def test_fit_guards_any_data(raw):
    reply = replies.fit(raw)
    assert is_gsm7(reply) and gsm7_length(reply) <= replies.SMS_MAX
    assert is_gsm7(replies.shown(raw)) and len(replies.shown(raw)) <= texts.SHOWN_MAX
