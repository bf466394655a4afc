"""E-mail addresses and the SMTP URL (issue 16): one check for what a merchant sends us, one mask for what
people see, and the LIPA_SMTP_URL / LIPA_SMTP_FROM settings read for shared.config.

Deliberately modest: one address, local part and a dotted domain, no display name, no comments, at most
254 characters (RFC 5321's path limit). Mail servers decide the rest; we only refuse what cannot be one."""
from __future__ import annotations

import re
from email.utils import parseaddr
from urllib.parse import unquote, urlparse

from .errors import ConfigError, InvalidInput

MAX_LENGTH = 254
SMTP_SCHEMES = {"smtp": 25, "smtps": 465}
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                      r"[A-Za-z]{2,63}")


def normalize_email(value) -> str:
    """A usable address with its domain lower-cased; InvalidInput (400 invalid_email) otherwise."""
    if not isinstance(value, str):
        raise InvalidInput("email must be text.", code="invalid_email")
    address = value.strip()
    local, _, domain = address.rpartition("@")
    if (len(address) > MAX_LENGTH or not _ADDRESS.fullmatch(address) or local.startswith(".")
            or local.endswith(".") or ".." in local):
        raise InvalidInput("email must be one e-mail address, like jane@example.com.", code="invalid_email")
    return f"{local}@{domain.lower()}"


def mask_email(address: str | None) -> str:
    """jane.doe@example.com -> j***@example.com: the domain tells where it went, the person stays private."""
    if not address:
        return "-"
    local, at, domain = str(address).rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def smtp_settings(env) -> dict:
    """LIPA_SMTP_URL and LIPA_SMTP_FROM, checked; the messages never repeat the URL (it may hold a password)."""
    raw = (env.get("LIPA_SMTP_URL") or "").strip()
    sender = (env.get("LIPA_SMTP_FROM") or "").strip()
    if not raw:
        return {"smtp_url": "", "smtp_password": "", "smtp_from": sender}
    parts = smtp_parts(raw)
    if not sender:
        raise ConfigError("LIPA_SMTP_FROM", "is required when LIPA_SMTP_URL is set (the receipts' sender)")
    try:
        normalize_email(parseaddr(sender)[1])
    except InvalidInput:
        raise ConfigError("LIPA_SMTP_FROM", "must be an e-mail address, or Name <address>") from None
    return {"smtp_url": raw, "smtp_password": parts["password"], "smtp_from": sender}


def smtp_parts(url: str) -> dict:
    """smtp[s]://[user:password@]host[:port] -> {scheme, host, port, user, password}; ConfigError naming
    LIPA_SMTP_URL otherwise, without the URL in the message (it may carry a password)."""
    try:
        parts = urlparse(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise ConfigError("LIPA_SMTP_URL", "is not a valid URL (expected smtp[s]://host:port)") from None
    if parts.scheme not in SMTP_SCHEMES:
        raise ConfigError("LIPA_SMTP_URL", "must start with smtp:// or smtps://")
    if not host:
        raise ConfigError("LIPA_SMTP_URL", "must name a host (smtp://host:port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError("LIPA_SMTP_URL", "must be only smtp[s]://[user:password@]host:port")
    return {"scheme": parts.scheme, "host": host, "port": port or SMTP_SCHEMES[parts.scheme],
            "user": unquote(parts.username or ""), "password": unquote(parts.password or "")}
