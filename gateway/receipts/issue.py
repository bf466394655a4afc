"""A paid payment's Receipt row and its PDF: the row's id is the receipt number, made once whoever asks
first (a print through the API, the receipt e-mail), so the printed and the e-mailed receipt carry the same
number. The drawing is shared.receipts' (the desktop prints with it too)."""
from __future__ import annotations

import peewee

from shared.db import write_tx
from shared.models import Receipt
from shared.receipts import receipt_data, render_pdf


def receipt_row(payment) -> Receipt:
    """The payment's Receipt, created on first use (prints not counted here); safe across processes."""
    with write_tx():
        row = Receipt.get_or_none(Receipt.payment == payment)
        if row is None:
            try:
                with write_tx():  # a savepoint: another process may create it first
                    row = Receipt.create(payment=payment)
            except peewee.IntegrityError:
                row = Receipt.get(Receipt.payment == payment)
    return row


def receipt_pdf(payment, merchant_name: str) -> tuple[str, bytes]:
    """(file name, PDF) of a payment's receipt, numbered like the printed one; the print count is untouched
    (a COPY is what staff print again, not what the payer was sent)."""
    data = receipt_data(payment, receipt_row(payment).id, False, merchant_name)
    return f"receipt-{data.reference}.pdf", render_pdf(data)
