"""What every catalogue shares: the languages, picking a template with its fallback, and the last guards
that make any text fit (a USSD screen, one SMS segment) whatever the data put into it did."""
from __future__ import annotations

from shared.gsm import gsm7_length, is_gsm7, to_gsm7
from shared.text import clean

LANGUAGES = ("en", "sw")
SCREEN_MAX = 160  # a USSD screen, "CON "/"END " included: Africa's Talking counts characters
SMS_MAX = 160  # one GSM-7 segment, in septets (an extension character such as "[" counts two)


def language_of(lang: str | None) -> str:
    """A supported language; English when the language is unknown."""
    return lang if lang in LANGUAGES else "en"


def template(catalogue: dict[str, dict[str, str]], lang: str | None, key: str, **values) -> str:
    """One template of a catalogue in ``lang`` (English when the language is unknown), filled in."""
    return catalogue[language_of(lang)][key].format(**values)


def shown(value, limit: int) -> str:
    """Customer or provider data put into a text: one clean line (shared.text), GSM-7 only, and cut to
    ``limit`` characters. GSM-7 has a line feed and a carriage return, so cleaning comes first."""
    return to_gsm7(clean(value))[:limit]


def fit_screen(screen: str) -> str:
    """Last guard before a USSD screen leaves: GSM-7 and at most SCREEN_MAX characters."""
    screen = screen if is_gsm7(screen) else to_gsm7(screen)
    return screen[:SCREEN_MAX]


def fit_sms(text: str) -> str:
    """Last guard before an SMS is queued: GSM-7 and one segment."""
    text = text if is_gsm7(text) else to_gsm7(text)
    while gsm7_length(text) > SMS_MAX:
        text = text[:-1]
    return text


def fits_sms(text: str) -> bool:
    """True when the text is GSM-7 and one segment as it is."""
    return is_gsm7(text) and gsm7_length(text) <= SMS_MAX
