"""CSV export of payments: the columns staff reconcile with, safe to open in a spreadsheet."""
from __future__ import annotations

import csv
import os
import secrets
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


class ExportCancelled(Exception):
    """Staff cancelled the export; nothing was left at the chosen path."""


def write_csv(rows: Iterable[Payment], out: IO[str], *, progress: Callable[[int], None] | None = None,
              every: int = 200, cancelled: Callable[[], bool] | None = None) -> int:
    """Write a header and one line per payment; the number of payments written. ``progress(count)`` hears every
    ``every`` lines (a page of the API); ``cancelled()`` is asked before each line and stops with
    ExportCancelled."""
    writer = csv.writer(out)
    writer.writerow([name for name, _ in COLUMNS])
    count = 0
    for payment in rows:
        if cancelled is not None and cancelled():
            raise ExportCancelled(f"Export cancelled after {count:,} payments.")
        writer.writerow([safe_cell(get(payment)) for _, get in COLUMNS])
        count += 1
        if progress is not None and count % every == 0:
            progress(count)
    return count


def export_payments(rows: Iterable[Payment], path: str | Path, **follow) -> int:
    """Write to a file (UTF-8 with BOM so Excel reads the names right); the number of payments. The lines go to
    a temporary file beside it, renamed over ``path`` only once complete: a cancel or a lost connection half-way
    leaves no half file (and an older export at that path as it was). ``follow``: write_csv's progress, every
    and cancelled."""
    path = Path(path)
    part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")  # "x": never another's file; the umask's mode
    try:
        with open(part, "x", newline="", encoding="utf-8-sig") as out:
            count = write_csv(rows, out, **follow)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return count
