"""Clean text at the edge: what a provider, a statement or a caller sends is shown to people and printed.

The inbox keeps every body exactly as received (the evidence); what a payment keeps, and every rendering
(USSD screen, SMS, receipt, desktop), goes through ``clean``. A BillRefNumber of "X\\nAMOUNT KES 99999"
would otherwise print a forged amount line on a receipt, an ESC byte drives a thermal printer, and a
right-to-left override turns "KES 100" around on screen. One home for the rule, used by both sides."""
from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")
# Unicode categories that draw nothing a reader can check: controls (C0, C1, DEL), format characters
# (bidi overrides, zero-width joiners), surrogates, private use and unassigned code points.
_DROP = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_AS_SPACE = frozenset({"Zl", "Zp"})  # line and paragraph separators: a line break in all but name


def clean(value, limit: int | None = None) -> str:
    """One line of printable text: controls and format characters removed, any line break or run of
    whitespace made one space, trimmed, then cut to ``limit`` characters (None: no cap).

    Tabs and newlines become spaces rather than vanish, so "A\\nB" reads "A B", not "AB"."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable():  # the common case, without a per-character walk
        if "  " in text or text[:1] == " " or text[-1:] == " ":
            text = _SPACES.sub(" ", text).strip()
        return text[:limit].rstrip() if limit is not None else text
    cleaned = _SPACES.sub(" ", "".join(_keep(ch) for ch in text)).strip()
    return cleaned[:limit].rstrip() if limit is not None else cleaned


def _keep(ch: str) -> str:
    if ch in "\t\n\r\v\f" or unicodedata.category(ch) in _AS_SPACE:
        return " "
    return "" if unicodedata.category(ch) in _DROP else ch


def is_clean(value: str) -> bool:
    """True when ``clean`` would leave the text as it is (tests and assertions)."""
    return clean(value) == value
