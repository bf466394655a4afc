"""Amounts are integers of whole Kenyan shillings; never floats."""
from __future__ import annotations

import re

from .errors import InvalidInput

MIN_AMOUNT = 1
MAX_AMOUNT = 250_000
_WHOLE = re.compile(r"^\s*([0-9]{1,7})(?:\.0{1,2})?\s*$")


def parse_amount(value) -> int:
    """Accept 500, "500", "500.00", "1,200"; refuse fractions, negatives, junk and out-of-range values."""
    if isinstance(value, bool):
        raise InvalidInput("Amount must be a whole number of shillings.", code="invalid_amount")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise InvalidInput("Amount must be a whole number of shillings.", code="invalid_amount")
        amount = int(value)
    else:
        match = _WHOLE.match(str(value).replace(",", "")) if value is not None else None
        if not match:
            raise InvalidInput("Amount must be a whole number of shillings.", code="invalid_amount")
        amount = int(match.group(1))
    check_range(amount)
    return amount


def check_range(amount: int) -> int:
    """M-Pesa takes 1 to 250,000 KES per transaction."""
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise InvalidInput(
            f"Amount must be from {MIN_AMOUNT} to {MAX_AMOUNT:,} KES.", code="amount_out_of_range"
        )
    return amount


def provider_amount(value) -> int | None:
    """An amount as a provider sends it (1.00, "10.00", 500) to whole shillings; None if not whole, or too
    large for any amount we record (a query with 9223372036854775296 overflowed SQLite's integer)."""
    try:
        as_float = float(str(value).replace(",", ""))
    except (TypeError, ValueError):
        return None
    if not as_float.is_integer() or abs(as_float) >= 10**9:  # 10**9: no amount column holds more (fuzz, issue 7)
        return None
    return int(as_float)


def format_kes(amount: int) -> str:
    """KES 1,200"""
    return f"KES {amount:,}"
