"""CSV export of payments: the columns staff reconcile with, safe to open in a spreadsheet."""
from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from .models import Payment, local_time

COLUMNS: tuple[tuple[str, Callable[[Payment], object]], ...] = (
    ("id", lambda p: p.id),
    ("created_at_eat", lambda p: local_time(p.created_at)),
    ("reference", lambda p: p.reference),
    ("phone", lambda p: p.phone),
    ("amount_kes", lambda p: p.amount),
    ("account", lambda p: p.account),
    ("status", lambda p: p.status),
    ("mpesa_receipt", lambda p: p.mpesa_receipt or ""),
    ("channel", lambda p: p.channel),
    ("refunded_kes", lambda p: p.refunded_amount),
    ("flagged", lambda p: "yes" if p.flagged else ""),
    ("status_message", lambda p: p.status_message),
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(rows: Iterable[Payment], out: IO[str]) -> int:
    """Write a header and one line per payment; the number of payments written."""
    writer = csv.writer(out)
    writer.writerow([name for name, _ in COLUMNS])
    count = 0
    for payment in rows:
        writer.writerow([safe_cell(get(payment)) for _, get in COLUMNS])
        count += 1
    return count


def export_payments(rows: Iterable[Payment], path: str | Path) -> int:
    """Write to a file (UTF-8 with BOM so Excel reads the names right); the number of payments."""
    with open(path, "w", newline="", encoding="utf-8-sig") as out:
        return write_csv(rows, out)
