"""Reading an M-Pesa statement export (CSV from the organisation portal or a till) into plain lines; no database.

Only completed money-in rows are kept; charges and withdrawals are skipped. Times are Nairobi time in the
file and naive UTC here. A file in the wrong format raises StatementError naming the line and the column.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.text import clean

EAT = timedelta(hours=3)  # Nairobi is UTC+3 all year
HEADER_SEARCH_ROWS = 50

# internal name -> (the name shown in messages, header spellings after _norm())
COLUMNS = {
    "receipt": ("Receipt No.", ("receipt no", "receipt number", "receipt")),
    "completed": ("Completion Time", ("completion time", "completed time", "completion date")),
    "initiated": ("Initiation Time", ("initiation time",)),
    "details": ("Details", ("details", "transaction details")),
    "status": ("Transaction Status", ("transaction status", "status")),
    "paid_in": ("Paid In", ("paid in", "credit amount", "credit")),
    "withdrawn": ("Withdrawn", ("withdrawn", "debit amount", "debit")),
    "balance": ("Balance", ("balance",)),
    "reason": ("Reason Type", ("reason type", "transaction type")),
    "other_party": ("Other Party Info", ("other party info", "other party")),
    "linked": ("Linked Transaction ID", ("linked transaction id",)),
    "account": ("A/C No.", ("a/c no", "account number", "account no", "ac no")),
}
REQUIRED = ("receipt", "completed", "status", "paid_in")
_ALIASES = {alias: key for key, (_, aliases) in COLUMNS.items() for alias in aliases}

_AMOUNT = re.compile(r"(-?)(\d+)(?:\.(\d*))?")
_TIME = re.compile(r"(\d{1,2})[-/](\d{1,2})[-/](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_ISO_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?")
_ANY_TIME = re.compile(r"\d{1,2}[-/]\d{1,2}[-/]\d{4}(?: \d{1,2}:\d{2}(?::\d{2})?)?")
_FROM_PHONE = re.compile(r"\bfrom\s+(\d{3,12})(\*+\d{0,6})?(?![\d*])", re.I)
_LEAD_PHONE = re.compile(r"^\s*(\d{3,12})(\*+\d{0,6})?(?![\d*])")
_ACC = re.compile(r"\bAcc\.?\s*(\S+)", re.I)
_RECEIPT = re.compile(r"[A-Z0-9]{1,32}")
C2B_WORDS = ("pay bill from", "buy goods")


class StatementError(ValueError):
    """The file is not a statement we can read; names the line (1-based) and the column."""

    def __init__(self, line_no: int, column: str, message: str):
        super().__init__(f"Line {line_no}, column {column}: {message}")
        self.line_no = line_no
        self.column = column
        self.message = message


@dataclass(slots=True)
class Line:
    """A completed money-in row of the statement."""

    line_no: int
    receipt: str
    completed_at: datetime  # naive UTC
    amount: int
    details: str = ""
    account: str = ""
    other_party: str = ""
    phone_prefix: str = ""  # the masked payer number's visible digits: 25472****904 -> 25472, 904
    phone_suffix: str = ""
    phone: str = ""  # the whole number, when the statement shows it unmasked
    channel: str = "stk"  # c2b: paid from the M-Pesa menu (Pay Bill / Buy Goods); stk: Pay Bill Online


@dataclass
class Statement:
    lines: list[Line]
    period_start: datetime | None = None  # naive UTC, from "Time Period:", else None
    period_end: datetime | None = None
    metadata: dict = field(default_factory=dict)
    header_line: int = 0
    skipped: int = 0  # rows read but not kept: charges, withdrawals, rows not completed

    def period(self) -> tuple[datetime, datetime] | None:
        """The metadata's period, else the first and last line's completion time."""
        if self.period_start and self.period_end:
            return self.period_start, self.period_end
        if not self.lines:
            return None
        times = [line.completed_at for line in self.lines]
        return min(times), max(times)

    def period_text(self) -> str:
        """The period in Nairobi time, as the portal writes it, for people."""
        period = self.period()
        if period is None:
            return ""
        start, end = (moment + EAT for moment in period)
        return f"{start:%d-%m-%Y %H:%M:%S} to {end:%d-%m-%Y %H:%M:%S}"


def decode(data: bytes) -> str:
    """UTF-8 (with or without a BOM), else Windows-1252, as Excel on Windows writes it."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def parse(data: bytes | str) -> Statement:
    """The statement's money-in lines and its metadata; raises StatementError on a file we cannot read."""
    text = decode(data) if isinstance(data, bytes) else data.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    metadata, header, header_line = _find_header(reader)
    columns = _columns(header, header_line)
    statement = Statement(lines=[], metadata=metadata, header_line=header_line)
    statement.period_start, statement.period_end = _period(metadata)
    _read_rows(reader, columns, {key: header[i].strip() for key, i in columns.items()}, statement)
    return statement


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9/]+", " ", name.lower()).strip()


def _keys(row: list[str]) -> dict[str, int]:
    """Internal column name -> index, for the cells that are known column names (first one wins)."""
    keys: dict[str, int] = {}
    for i, cell in enumerate(row):
        key = _ALIASES.get(_norm(cell))
        if key and key not in keys:
            keys[key] = i
    return keys


def _find_header(reader) -> tuple[dict, list[str], int]:
    """Skip metadata rows (kept as a dict) up to the row that names the columns."""
    metadata: dict[str, list[str]] = {}
    for row in reader:
        keys = _keys(row)
        if len(keys) >= 3:  # metadata rows never hold three column names
            return metadata, row, reader.line_num
        if row and row[0].strip():
            metadata[_norm(row[0])] = [cell.strip() for cell in row[1:] if cell.strip()]
        if reader.line_num >= HEADER_SEARCH_ROWS:
            break
    raise StatementError(1, COLUMNS["receipt"][0], "no header row (Receipt No., Completion Time, Paid In …) "
                         f"in the first {HEADER_SEARCH_ROWS} lines; is this an M-Pesa statement export?")


def _columns(header: list[str], line_no: int) -> dict[str, int]:
    """The header's known columns; a required one missing is an error naming it."""
    keys = _keys(header)
    for key in REQUIRED:
        if key not in keys:
            raise StatementError(line_no, COLUMNS[key][0], "this required column is missing from the header")
    return keys
def _period(metadata: dict) -> tuple[datetime | None, datetime | None]:
    """'Time Period:, From, 22-11-2026 00:00:00, To, 22-11-2026 23:59:59' as naive UTC; (None, None) if absent."""
    for key, values in metadata.items():
        if key.startswith("time period") or key == "period":
            found = _ANY_TIME.findall(" ".join(values))
            if len(found) == 2:
                try:
                    start, end = (parse_time(found[0], 0, "Time Period"), parse_time(found[1], 0, "Time Period"))
                except StatementError:
                    return None, None
                if " " not in found[1]:
                    end += timedelta(days=1, seconds=-1)  # "To 22-11-2026" means to the end of that day
                return start, end
    return None, None


def _read_rows(reader, columns: dict[str, int], names: dict[str, str], statement: Statement) -> None:
    """Keep completed money-in rows; everything else is counted as skipped."""
    get = columns.get
    i_status, i_paid, i_reason = columns["status"], columns["paid_in"], get("reason", -1)
    width = max(columns.values()) + 1
    lines, skipped = statement.lines, 0
    for row in reader:
        if len(row) < width:
            if not any(cell.strip() for cell in row):
                continue
            row = row + [""] * (width - len(row))
        if row[i_status].strip().lower() != "completed" or not row[i_paid].strip():
            skipped += 1
            continue
        amount = parse_amount(row[i_paid], reader.line_num, names["paid_in"])
        if amount <= 0 or (i_reason >= 0 and "charge" in row[i_reason].lower()):
            skipped += 1
            continue
        lines.append(_line(row, columns, names, reader.line_num, amount))
    statement.skipped = skipped


def _line(row: list[str], columns: dict[str, int], names: dict[str, str], line_no: int, amount: int) -> Line:
    """One kept row as a Line, with the payer hint and account read from Details when needed."""
    receipt = row[columns["receipt"]].strip().upper()
    if not _RECEIPT.fullmatch(receipt):
        raise StatementError(line_no, names["receipt"], f"{receipt!r} is not an M-Pesa receipt number")
    completed_at = parse_time(row[columns["completed"]], line_no, names["completed"])
    details = _cell(row, columns, "details")
    other_party = _cell(row, columns, "other_party")
    account = _cell(row, columns, "account")
    if not account:
        found = _ACC.search(details)
        account = found.group(1) if found else ""
    return make_line(line_no, receipt, completed_at, amount, details, account, other_party)


def make_line(line_no: int, receipt: str, completed_at: datetime, amount: int, details: str = "",
              account: str = "", other_party: str = "") -> Line:
    """A Line with its payer hint and channel read from Details (also for lines read back from the database)."""
    details, other_party = clean(details, 255), clean(other_party, 100)
    line = Line(line_no, receipt, completed_at, amount, details, clean(account, 40).upper(), other_party)
    _payer_hint(line, details, other_party)
    lowered = details.lower()
    line.channel = "c2b" if C2B_WORDS[0] in lowered or C2B_WORDS[1] in lowered else "stk"
    return line


def _cell(row: list[str], columns: dict[str, int], key: str) -> str:
    index = columns.get(key)
    return row[index].strip() if index is not None else ""


def _payer_hint(line: Line, details: str, other_party: str) -> None:
    """'from 25472****904 - MARY W' (or Other Party Info '254722****04 - MARY W') -> prefix, suffix or phone."""
    found = _FROM_PHONE.search(details) or _LEAD_PHONE.match(other_party)
    if not found:
        return
    visible, masked = found.group(1), found.group(2)
    if masked:
        line.phone_prefix, line.phone_suffix = visible, masked.lstrip("*")
        return
    phone = "254" + visible[1:] if len(visible) == 10 and visible.startswith("0") else visible
    if len(phone) == 12 and phone.startswith("254"):
        line.phone = line.phone_prefix = phone


def parse_amount(text: str, line_no: int, column: str) -> int:
    """'1,020.00' -> 1020; a fraction of a shilling or anything not a number is an error."""
    found = _AMOUNT.fullmatch(text.strip().replace(",", ""))
    if not found:
        raise StatementError(line_no, column, f"{text.strip()!r} is not an amount")
    sign, whole, fraction = found.groups()
    if fraction and fraction.strip("0"):
        raise StatementError(line_no, column, f"{text.strip()!r} is not a whole number of shillings")
    return -int(whole) if sign else int(whole)


def parse_time(text: str, line_no: int, column: str) -> datetime:
    """'22-11-2026 09:12:03' (Nairobi time; YYYY-MM-DD also read) -> naive UTC."""
    value = text.strip()
    found = _TIME.fullmatch(value)
    if found:
        day, month, year, hour, minute, second = found.groups()
    else:
        found = _ISO_TIME.fullmatch(value)
        if not found:
            raise StatementError(line_no, column, f"{value!r} is not a date like 22-11-2026 09:12:03")
        year, month, day, hour, minute, second = found.groups()
    try:
        local = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        raise StatementError(line_no, column, f"{value!r} is not a real date and time") from None
    return local - EAT
