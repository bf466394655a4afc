"""E-mail through the outbox (issue 16): the payer's receipt once a request is PAID, and what goes on the wire.

Queued like an SMS, in the change's own transaction, under a dedupe key (one receipt per request, one
summary per merchant and Nairobi day), so a mail leaves only if the change committed and never twice.
The outbox row keeps only the subject and text (sealed like every body); the PDF receipt is rendered when
the mail is sent, from the payment, with the same code the API's receipt uses (shared.receipts). A mail
that cannot be queued is logged and skipped: a payment never fails because of its e-mail.
"""
from __future__ import annotations

import json
import logging
import re
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from shared.db import db
from shared.models import Notification, Payment, PaymentRequest
from shared.receipts import nairobi_time
from shared.states import PaymentStatus

from ..receipts.issue import receipt_pdf
from ..texts.mail import receipt_text
from . import outbox

log = logging.getLogger(__name__)
CHANNEL = "email"
RECEIPT_KIND, SETTLEMENT_KIND = "receipt_email", "settlement_summary"
S = PaymentStatus


def receipt_key(request_id: int) -> str:
    return f"email:request:{request_id}:receipt"


def queue(*, kind: str, recipient: str, subject: str, text: str, dedupe_key: str, payment=None, request=None,
          language: str = "en") -> Notification:
    """One e-mail in the outbox (the caller's transaction); the same key never queues twice."""
    body = json.dumps({"subject": subject, "text": text}, sort_keys=True)
    return outbox.enqueue(channel=CHANNEL, kind=kind, recipient=recipient, body=body, payment=payment,
                          request=request, language=language, dedupe_key=dedupe_key)


class ReceiptMailer:
    """Transition listener: a payment that pays a request carrying ``email`` queues the payer's receipt."""

    def __init__(self, config):
        self.config = config

    def __call__(self, payment: Payment, from_status: str, to_status: str, event) -> None:
        if not self.config.smtp_url or to_status != S.COMPLETED.value or payment.request_id is None:
            return
        if from_status in (S.SETTLED.value, S.REFUND_PENDING.value):
            return  # a refund that failed: the money was receipted already
        try:
            with db.atomic():  # a savepoint: a failure here must not abort the payment's transaction
                self._queue(payment)
        except Exception:  # noqa: BLE001 - the payment stands whatever happens to its e-mail
            log.exception("receipt e-mail for payment %s not queued", payment.id)

    def _queue(self, payment: Payment) -> None:
        req = PaymentRequest.get_by_id(payment.request_id)
        if not req.email or req.status != "PAID":
            return
        subject, text = receipt_text(payment.language, merchant=_merchant(req, self.config),
                                     reference=payment.reference, amount=int(payment.amount),
                                     receipt=payment.mpesa_receipt or "-", account=payment.account,
                                     date=nairobi_time(payment.completed_at or payment.created_at))
        queue(kind=RECEIPT_KIND, recipient=req.email, subject=subject, text=text, payment=payment, request=req,
              language=payment.language, dedupe_key=receipt_key(req.id))


def _merchant(req: PaymentRequest | None, config) -> str:
    """Whom the payer paid: the request's merchant, else this gateway's LIPA_MERCHANT_NAME, else Lipa."""
    if req is not None and req.merchant_id:
        return req.merchant.name
    return getattr(config, "merchant_name", "") or "Lipa"


class MailOut:
    """The dispatcher's e-mail channel: builds the message of an outbox row and hands it to the sender."""

    def __init__(self, sender, config):
        self.sender = sender
        self.config = config

    def send(self, row: Notification) -> dict:
        """Send one row; returns the columns the dispatcher stores on success."""
        self.sender.send(compose(row, self.config))
        return {"provider_status": "accepted"}


def compose(row: Notification, config) -> EmailMessage:
    """The row's e-mail: its subject and text, a Message-ID derived from its dedupe key (a receiving server
    that saw it already can drop a resend), and the PDF receipt for a receipt e-mail."""
    content = json.loads(row.body)
    message = EmailMessage()
    message["From"] = config.smtp_from
    message["To"] = row.recipient
    message["Subject"] = content["subject"]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = _message_id(row, config.smtp_from)
    message.set_content(content["text"])
    if row.kind == RECEIPT_KIND and row.payment_id:
        payment = Payment.get_by_id(row.payment_id)
        req = PaymentRequest.get_or_none(PaymentRequest.id == payment.request_id) if payment.request_id else None
        name, pdf = receipt_pdf(payment, _merchant(req, config))
        message.add_attachment(pdf, maintype="application", subtype="pdf", filename=name)
    return message


def _message_id(row: Notification, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "lipa.local"
    local = re.sub(r"[^A-Za-z0-9.-]", ".", row.dedupe_key or f"notification.{row.id}")
    return f"<{local}.{row.id}@{domain}>"
