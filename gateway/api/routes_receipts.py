"""Customer receipts of paid payments: a numbered Receipt row, counted prints, PDF or thermal-printer text."""
from __future__ import annotations

from flask import Response, request

from shared.db import write_tx
from shared.errors import InvalidInput, NotAllowed
from shared.models import Receipt
from shared.receipts import WIDTHS, receipt_data, render_pdf, render_text
from shared.states import PaymentStatus

from ..receipts.issue import receipt_row
from .common import bp, principal
from .routes_payments import audit, load_payment, services

S = PaymentStatus
PRINTABLE = (S.COMPLETED.value, S.SETTLED.value, S.REFUND_PENDING.value, S.REFUNDED.value)
FORMATS = ("pdf", "text")


def _options() -> tuple[str, int]:
    """(format, width) from ?format=pdf|text&width=32|48."""
    fmt = request.args.get("format", "pdf").lower()
    if fmt not in FORMATS:
        raise InvalidInput("format must be pdf or text.", code="invalid_format")
    raw = request.args.get("width", "32")
    if not raw.isdigit() or int(raw) not in WIDTHS:
        raise InvalidInput("width must be 32 (58 mm paper) or 48 (80 mm paper).", code="invalid_width")
    return fmt, int(raw)


def _print_receipt(payment) -> Receipt:
    """The payment's Receipt (made on the first print, its id the receipt number), prints counted."""
    with write_tx():
        row = receipt_row(payment)
        Receipt.update(prints=Receipt.prints + 1).where(Receipt.id == row.id).execute()
        row = Receipt.get_by_id(row.id)
        audit("print_receipt", payment.id, details={"receipt_no": row.id, "print": row.prints})
    return row


def _preview_of(payment):
    """What the next print would show, counting nothing: the receipt's number once it has one."""
    row = Receipt.get_or_none(Receipt.payment == payment)
    return (row.id if row else 0), bool(row and row.prints >= 1)


@bp.get("/payments/<int:payment_id>/receipt")
def payment_receipt(payment_id: int):
    """The receipt as a PDF (default) or text; every print after the first says COPY.

    ``?preview=1`` shows it without counting a print (marked PREVIEW), so a look before printing never turns
    the first real print into a COPY."""
    principal().require("viewer")
    fmt, width = _options()
    preview = request.args.get("preview", "0") in ("1", "true", "yes")
    payment = load_payment(payment_id)
    if payment.status not in PRINTABLE:
        raise NotAllowed(f"A {payment.status} payment has no receipt.", code="no_receipt")
    if preview:
        number, copy = _preview_of(payment)
    else:
        row = _print_receipt(payment)
        number, copy = row.id, row.prints > 1
    merchant = getattr(services().config, "merchant_name", "") or "Lipa"
    data = receipt_data(payment, number, copy, merchant, preview=preview)
    headers = {"X-Receipt-Number": str(number), "X-Receipt-Copy": "true" if data.copy else "false",
               "X-Receipt-Preview": "true" if preview else "false", "Cache-Control": "no-store"}
    if fmt == "text":
        return Response(render_text(data, width), mimetype="text/plain", headers=headers)
    headers["Content-Disposition"] = f'inline; filename="receipt-{data.reference}.pdf"'
    return Response(render_pdf(data), mimetype="application/pdf", headers=headers)
