"""Human-friendly identifiers: payment references customers can read out, request codes they can type."""
from __future__ import annotations

import secrets

# Crockford's base32 without I, L, O, U: nothing a customer can misread over the phone.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def payment_reference() -> str:
    """LP + 7 characters (34 billion values); uniqueness is enforced by the database."""
    return "LP" + "".join(secrets.choice(_ALPHABET) for _ in range(7))


def request_code() -> str:
    """A six-digit code a feature-phone user can type; never starts with 0."""
    return str(secrets.randbelow(900_000) + 100_000)
