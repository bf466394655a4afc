"""GSM-7: the alphabet a plain SMS or USSD screen can carry without switching to UCS-2."""
from __future__ import annotations

import unicodedata

_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENDED = "^{}\\[~]|€\f"
_BASIC_SET = frozenset(_BASIC)
_EXT_SET = frozenset(_EXTENDED)
_ALL_SET = _BASIC_SET | _EXT_SET


def is_gsm7(text: str) -> bool:
    """True when every character fits GSM-7 (basic or extension table)."""
    return _ALL_SET.issuperset(text)  # a set operation in C: every USSD screen goes through here


def gsm7_length(text: str) -> int:
    """Septets used: extension characters count double."""
    return sum(2 if ch in _EXT_SET else 1 for ch in text)


def to_gsm7(text: str) -> str:
    """Transliterate data (names, accounts) so one odd character never switches an SMS to UCS-2."""
    out = []
    for ch in str(text):
        if ch in _BASIC_SET:
            out.append(ch)
            continue
        plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode("ascii")
        out.append("".join(c for c in plain if c in _BASIC_SET) or "?")
    return "".join(out)
