"""Logging that never shows a full phone number: a filter masks any that slipped into a message."""
from __future__ import annotations

import logging
import re

_PHONE = re.compile(r"(?<!\d)(\+?254|0)([17]\d{2})(\d{3})(\d{3})(?!\d)")


def mask_text(text: str) -> str:
    """254712345678 -> 254712***678 wherever it appears."""
    return _PHONE.sub(lambda m: f"{m.group(1)}{m.group(2)}***{m.group(4)}", text)


class PhoneMaskFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        return True


def configure_logging(level: str = "INFO") -> None:
    """One format for every process; masking on every handler."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PhoneMaskFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
