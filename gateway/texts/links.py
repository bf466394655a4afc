"""The payment-link SMS (issue 16): what a customer gets when a merchant opens a request for their phone.

One GSM-7 segment in English or Kiswahili. The link and the dial string must arrive whole (a cut link
opens nothing), so the merchant's name is what gives way: it gets the room the rest leaves, and without
room for the link the text keeps only the dial string, which works on every phone.
tests/test_link_sms.py renders it at its longest values."""
from __future__ import annotations

from shared.gsm import gsm7_length, is_gsm7
from shared.money import format_kes

from .common import SMS_MAX, fit_sms, language_of, shown

MERCHANT_MAX = 40  # a name longer than this is cut even when the SMS has room: it is a text, not a letterhead
MERCHANT_MIN = 8  # below this a name says nothing: the link goes, the dial string stays

TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "link": "Lipa: Pay {amount} to {merchant}. Open {url} or dial {dial}",
        "dial": "Lipa: Pay {amount} to {merchant}. Dial {dial} to pay with M-Pesa.",
        "any_amount": "any amount",
    },
    "sw": {
        "link": "Lipa: Lipa {amount} kwa {merchant}. Fungua {url} au piga {dial}",
        "dial": "Lipa: Lipa {amount} kwa {merchant}. Piga {dial} kulipa kwa M-Pesa.",
        "any_amount": "kiasi chochote",
    },
}


def render_link(lang: str | None, *, amount: int | None, merchant: str, url: str, dial: str) -> str:
    """The SMS for one request; ``url`` may be empty (no LIPA_PUBLIC_URL): then it names the dial string."""
    texts = TEMPLATES[language_of(lang)]
    values = {"amount": texts["any_amount"] if amount is None else format_kes(amount), "dial": dial, "url": url}
    if url and is_gsm7(url):
        text = _with_merchant(texts["link"], values, merchant)
        if text is not None:
            return text
    return fit_sms(_with_merchant(texts["dial"], values, merchant) or texts["dial"].format(merchant="", **values))


def _with_merchant(template: str, values: dict, merchant: str) -> str | None:
    """The template with as much of the merchant's name as fits; None when too little would."""
    room = SMS_MAX - gsm7_length(template.format(merchant="", **values))
    name = shown(merchant, min(room, MERCHANT_MAX)).rstrip()
    if room < MERCHANT_MIN or not name:
        return None
    return template.format(merchant=name, **values)
