"""Customer receipts, shared by the gateway and the desktop app: the data, 58/80 mm thermal text, and a PDF.

``receipt_data`` takes a Payment row or the API's payment JSON, so both sides print the same receipt.
Every print after the first says COPY.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime, timezone

from .money import format_kes
from .phone import mask_phone
from .text import clean
from .timeutil import NAIROBI

WIDTHS = (32, 48)  # characters per line of a 58 mm and an 80 mm thermal printer
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


@dataclass(frozen=True)
class ReceiptData:
    """Everything printed on one receipt, already formatted."""

    receipt_no: int
    merchant: str
    reference: str
    mpesa_receipt: str
    amount: int
    amount_words: str
    date: str
    account: str
    phone: str
    status: str
    copy: bool
    preview: bool = False  # a look before printing: never counted, and says so on the paper

    @property
    def number(self) -> str:
        return f"{self.receipt_no:06d}" if self.receipt_no else "(on first print)"

    @property
    def marker(self) -> str:
        """The line above and below the receipt's body: PREVIEW, COPY or none (the original)."""
        return "*** PREVIEW ***" if self.preview else "*** COPY ***" if self.copy else ""


def _below_100(n: int) -> str:
    return _ONES[n] if n < 20 else _TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else "")


def _below_1000(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    head = f"{_ONES[hundreds]} hundred" if hundreds else ""
    tail = ("and " if hundreds else "") + _below_100(rest) if rest else ""
    return " ".join(part for part in (head, tail) if part)


def number_in_words(n: int) -> str:
    """0 to 999,999 in British English words: 1001 -> "one thousand and one"."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 1_000_000:
        raise ValueError(f"cannot write {n!r} in words (0 to 999,999)")
    if n == 0:
        return "zero"
    thousands, rest = divmod(n, 1000)
    head = f"{_below_1000(thousands)} thousand" if thousands else ""
    tail = ("and " if thousands and rest < 100 else "") + _below_1000(rest) if rest else ""
    return " ".join(part for part in (head, tail) if part)


def amount_in_words(amount: int) -> str:
    """"Twenty thousand five hundred shillings only", as on a cheque."""
    words = number_in_words(amount)
    return f"{words[0].upper()}{words[1:]} shilling{'' if amount == 1 else 's'} only"


def _field(payment, name: str):
    return payment.get(name) if isinstance(payment, dict) else getattr(payment, name, None)


def _as_datetime(value) -> datetime | None:
    """A naive-UTC datetime, or the API's ISO text with a Z, to aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def nairobi_time(value) -> str:
    """2024-05-01 14:03 EAT (receipts show the customer's local time)."""
    moment = _as_datetime(value)
    return moment.astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M EAT") if moment else "-"


def receipt_data(payment, receipt_no: int, copy: bool, merchant_name: str, *, preview: bool = False) -> ReceiptData:
    """The receipt of a Payment row or of the API's payment JSON.

    Every text field is cleaned here (shared.text), whatever the row holds: a stored account with a line
    break or an ESC byte must not print a forged line or drive the printer."""
    amount = int(_field(payment, "amount"))
    return ReceiptData(
        receipt_no=int(receipt_no), merchant=clean(merchant_name, 100) or "Lipa",
        reference=_shown(payment, "reference", 16), mpesa_receipt=_shown(payment, "mpesa_receipt", 32),
        amount=amount, amount_words=amount_in_words(amount),
        date=nairobi_time(_field(payment, "completed_at") or _field(payment, "created_at")),
        account=_shown(payment, "account", 40), phone=mask_phone(_field(payment, "phone")),
        status=clean(_field(payment, "status"), 16), copy=bool(copy), preview=bool(preview),
    )


def _shown(payment, name: str, limit: int) -> str:
    return clean(_field(payment, name), limit) or "-"


def _rows(data: ReceiptData) -> list[tuple[str, str]]:
    return [("Receipt No", data.number), ("Date", data.date), ("Reference", data.reference),
            ("M-Pesa receipt", data.mpesa_receipt), ("Account", data.account), ("Phone", data.phone),
            ("Status", data.status)]


def _pair(label: str, value: str, width: int) -> list[str]:
    """label ....... value on one line, or the value right-aligned below the label when too long."""
    if len(label) + 1 + len(value) <= width:
        return [label + " " * (width - len(label) - len(value)) + value]
    return [label[:width]] + [line.rjust(width) for line in textwrap.wrap(value, width, break_on_hyphens=False)]


def _centred(text: str, width: int) -> list[str]:
    return [line.center(width).rstrip() for line in textwrap.wrap(text, width)] or [""]


def render_text(data: ReceiptData, width: int = 32) -> str:
    """The receipt as plain text for a 58 mm (32) or 80 mm (48 characters) thermal printer."""
    if width not in WIDTHS:
        raise ValueError(f"width must be one of {WIDTHS}")
    rule = "-" * width
    copy = _centred(data.marker, width) if data.marker else []
    lines = _centred(data.merchant, width) + _centred("PAYMENT RECEIPT", width) + copy + [rule]
    for label, value in _rows(data):
        lines += _pair(label, value, width)
    lines += [rule] + _pair("AMOUNT", format_kes(data.amount), width) + textwrap.wrap(data.amount_words, width)
    lines += [rule] + _centred("Paid by M-Pesa. Thank you.", width) + copy
    return "\n".join(lines) + "\n"


def _latin1(text: str) -> str:
    """The PDF core fonts speak Latin-1; anything else becomes '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


def render_pdf(data: ReceiptData, *, compress: bool = True) -> bytes:
    """An 80 mm wide PDF receipt; ``compress=False`` leaves the text readable in the file (tests)."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(unit="mm", format=(80, 170))
    pdf.set_compression(compress)
    pdf.set_margins(5, 5, 5)
    pdf.set_auto_page_break(True, margin=5)
    pdf.set_title(_latin1(f"Receipt {data.number}"))
    pdf.add_page()
    line = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT}
    pdf.set_font("Helvetica", "B", 13)
    pdf.multi_cell(0, 6, _latin1(data.merchant), align="C", **line)
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(0, 6, "PAYMENT RECEIPT", align="C", **line)
    if data.marker:
        pdf.set_font("Helvetica", "B", 16)
        pdf.cell(0, 8, data.marker.strip("* "), align="C", **line)
    pdf.set_font("Helvetica", "", 9)
    for label, value in _rows(data):
        pdf.cell(28, 5, _latin1(label))
        pdf.multi_cell(0, 5, _latin1(value), align="R", **line)
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(28, 7, "AMOUNT")
    pdf.cell(0, 7, format_kes(data.amount), align="R", **line)
    pdf.set_font("Helvetica", "I", 9)
    pdf.multi_cell(0, 5, data.amount_words, **line)
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 5, "Paid by M-Pesa. Thank you.", align="C", **line)
    return bytes(pdf.output())
