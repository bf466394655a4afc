"""E-mail addresses (issue 16): one check for what a merchant sends us, one mask for what people see.

Deliberately modest: one address, local part and a dotted domain, no display name, no comments, at most
254 characters (RFC 5321's path limit). Mail servers decide the rest; we only refuse what cannot be one."""
from __future__ import annotations

import re

from .errors import InvalidInput

MAX_LENGTH = 254
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
