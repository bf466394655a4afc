"""Logging that never shows a full phone number, a secret or a token, whichever library logs it.

Masking happens where every log record is made (a LogRecord factory), not in one handler: gunicorn's
own loggers, werkzeug and urllib3 keep their own handlers, and a traceback's text (a database error
echoing the row's phone, say) is masked too, before any handler formats it. What is masked:
- phone numbers in every form a person or provider writes them (254712345678, +254 712 345 678,
  0712345678, 712345678): the last three digits stay, so two numbers can still be told apart;
- the values registered with hide() (the configuration's secrets, the callback token);
- what looks like a credential whatever its value: `Bearer …`, our staff tokens (lps_…) and API keys
  (lpk_…), the secret path segment of a Daraja callback URL, `password`/`secret`/`token`/`key`
  fields and query parameters, and phone query parameters;
- e-mail addresses (issue 16): the first letter and the domain stay (j***@example.com).
"""
from __future__ import annotations

import logging
import re
import threading

_PHONE = re.compile(r"(?<!\d)(\+?254|0)([17]\d{2})(\d{3})(\d{3})(?!\d)")
_LOG_PHONE = re.compile(r"(?<![\d*])(\+?254[ -]?|0)?([17]\d{2})[ -]?(\d{3})[ -]?(\d{3})(?![\d*])")
_CREDENTIALS = (
    (re.compile(r"(Bearer|Basic)\s+[^\s\"',;]+", re.I), r"\1 ***"),
    (re.compile(r"\blp[sk]_[A-Za-z0-9_-]{6,}"), "lp*_***"),
    (re.compile(r"(/mpesa/(?:stk/callback|c2b/validation|c2b/confirmation|result|timeout)/)[^/\s?#\"']+"), r"\1***"),
    (re.compile(r"([?&;](?:phone|msisdn|from|to|phoneNumber|token|key|api_?key|password|secret)=)[^&\s\"']*", re.I),
     r"\1***"),
    (re.compile(r"""(["']?\b(?:[a-z_]*password|passkey|[a-z_]*secret|security_?credential|api_?key|access_token)"""
                r"""["']?\s*[:=]\s*["']?)[^"'&\s,;}]+""", re.I), r"\1***"),
)
_EMAIL = re.compile(r"\b([A-Za-z0-9])[A-Za-z0-9._%+'-]*@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})\b")
_hidden: set[str] = set()
_hidden_re: re.Pattern | None = None
_lock = threading.Lock()
MIN_SECRET = 6  # shorter values are too likely to be ordinary words or numbers


def mask_text(text: str) -> str:
    """254712345678 -> 254712***678 wherever it appears (also used for payloads the API shows)."""
    return _PHONE.sub(lambda m: f"{m.group(1)}{m.group(2)}***{m.group(4)}", text)


def mask_log(text: str) -> str:
    """Everything a log line must not show: secrets and tokens first, then phones in any format."""
    if _hidden_re is not None:
        text = _hidden_re.sub("***", text)
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    text = _EMAIL.sub(r"\1***@\2", text)
    return _LOG_PHONE.sub(lambda m: f"{(m.group(1) or '').replace(' ', '')}{m.group(2)}***{m.group(4)}", text)


def hide(*values) -> None:
    """Never log these values (the configuration's secrets, generated tokens), whatever logs them."""
    global _hidden_re
    with _lock:
        _hidden.update(str(v) for v in values if v and len(str(v)) >= MIN_SECRET)
        ordered = sorted(_hidden, key=len, reverse=True)  # a secret containing another is masked whole
        _hidden_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None


def hide_config(config) -> None:
    """Register every secret field of a Config (shared.config.SECRET_FIELDS)."""
    from .config import SECRET_FIELDS

    values = []
    for name in SECRET_FIELDS:
        value = getattr(config, name, "")
        values.extend(value if isinstance(value, (list, tuple)) else [value])
    hide(*values)


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask a record's message and traceback in place (args merged into the message first)."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep the raw pieces, masked
        message = f"{record.msg} {record.args}"
    record.msg, record.args = mask_log(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = mask_log(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = mask_log(record.stack_info)
    return record


class PhoneMaskFilter(logging.Filter):
    """For a handler outside configure_logging(): masks what reaches it."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def install_masking() -> None:
    """Mask every record the process makes, whichever logger and handler (idempotent)."""
    base = logging.getLogRecordFactory()
    if getattr(base, "lipa_masking", False):
        return

    def factory(*args, **kwargs):
        return mask_record(base(*args, **kwargs))

    factory.lipa_masking = True
    logging.setLogRecordFactory(factory)


def configure_logging(level: str = "INFO") -> None:
    """One format for every process; masking on every record."""
    install_masking()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PhoneMaskFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
