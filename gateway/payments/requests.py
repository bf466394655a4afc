"""Payment requests (bills, payment links): DRAFT -> OPEN -> PAID / EXPIRED / CANCELLED, with merchant webhooks."""
from __future__ import annotations

import json
import logging
from datetime import timedelta

import peewee

from shared.db import retry_locked, write_tx
from shared.errors import InvalidInput, InvalidTransition
from shared.mailaddr import normalize_email
from shared.models import Payment, PaymentRequest
from shared.money import parse_amount
from shared.phone import normalize_phone
from shared.refs import request_code
from shared.states import REQUEST_TRANSITIONS, PaymentStatus, RequestStatus
from shared.text import clean
from shared.timeutil import iso, utcnow

from ..notify import outbox
from ..notify.links import queue_link_sms
from ..providers.outbound import OutboundPolicy
from .service import check_account
from .unexpected import handle_unexpected

log = logging.getLogger(__name__)
R = RequestStatus
MAX_EXPIRES_IN = 90 * 24 * 3600


@retry_locked
def create_request(*, amount=None, account, description: str = "", phone=None, expires_in: int | None = None,
                   callback_url: str | None = None, idempotency_key: str | None = None,
                   merchant=None, url_policy: OutboundPolicy | None = None, public_url: str = "",
                   ussd_code: str = "", email: str | None = None) -> PaymentRequest:
    """Open a request with a fresh six-digit code; amount None lets the customer choose it. ``url_policy``
    (the configured OutboundPolicy) says where ``callback_url`` may point; by default, the local rule.
    With a ``phone`` and a ``ussd_code``, the customer's link SMS is queued in the same transaction; an
    ``email`` is where the payer's receipt goes once it is PAID (gateway.notify.mail)."""
    values = dict(
        amount=None if amount is None else parse_amount(amount), account=check_account(account),
        description=clean(description, 100), phone=normalize_phone(phone) if phone else None,
        email=normalize_email(email) if email is not None else None,
        expires_at=_expiry(expires_in), callback_url=_check_url(callback_url, url_policy),
        idempotency_key=idempotency_key, merchant=merchant, status=R.OPEN.value,
    )
    for _ in range(10):
        try:
            with write_tx():
                row = PaymentRequest.create(code=request_code(), **values)
                if ussd_code:
                    queue_link_sms(row, url=pay_url(row.code, public_url) if public_url else "",
                                   dial=ussd_string(row.code, ussd_code))
                return row
        except peewee.IntegrityError:
            if idempotency_key and PaymentRequest.get_or_none(PaymentRequest.idempotency_key == idempotency_key):
                return PaymentRequest.get(PaymentRequest.idempotency_key == idempotency_key)
    raise RuntimeError("could not find a free request code")


def pay_url(code: str, public_url: str) -> str:
    """The link a merchant shares: the request's public pay page."""
    return f"{public_url.rstrip('/')}/pay/{code}"


def ussd_string(code: str, service_code: str) -> str:
    """What a customer dials to go straight to the request: *384*123# -> *384*123*<code>#."""
    return f"{service_code.rstrip('#')}*{code}#"


def _expiry(expires_in):
    if expires_in is None:
        return None
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 60 <= expires_in <= MAX_EXPIRES_IN:
        raise InvalidInput("expires_in must be whole seconds from 60 to 90 days.", code="invalid_expires_in")
    return utcnow() + timedelta(seconds=expires_in)


def _check_url(url, policy: OutboundPolicy | None):
    """Where the webhook may go (SSRF, issue 13): checked now, and again when it connects."""
    return (policy or OutboundPolicy()).check_url(url)


def set_request_status(req: PaymentRequest, to: RequestStatus | str, *, payment: Payment | None = None) -> None:
    """Move a request (the caller holds the transaction) and queue its signed merchant webhook."""
    to = RequestStatus(to)
    if to not in REQUEST_TRANSITIONS[RequestStatus(req.status)]:
        raise InvalidTransition(f"A {req.status} payment request cannot become {to.value}.")
    req.status = to.value
    req.updated_at = utcnow()
    req.save()
    if req.callback_url:
        event = webhook_event(req, payment)
        outbox.enqueue(channel="webhook", kind=event["type"], recipient=req.callback_url,
                       body=json.dumps(event, sort_keys=True), request=req, payment=payment,
                       dedupe_key=f"webhook:{req.id}:{to.value}")


def webhook_event(req: PaymentRequest, payment: Payment | None) -> dict:
    """The JSON a merchant receives; its id is stable, so a merchant can de-duplicate retries."""
    return {
        "id": f"evt_req{req.id}_{req.status.lower()}",
        "type": f"payment_request.{req.status.lower()}",
        "created": iso(utcnow()),
        "data": {
            "payment_request": {"id": req.id, "code": req.code, "amount": req.amount, "account": req.account,
                                "description": req.description, "status": req.status,
                                "expires_at": iso(req.expires_at)},
            "payment": None if payment is None else {
                "id": payment.id, "reference": payment.reference, "amount": payment.amount,
                "phone": payment.phone, "mpesa_receipt": payment.mpesa_receipt, "status": payment.status},
        },
    }


def on_payment_change(payment: Payment, from_status: str, to_status: str, event) -> None:
    """A completed payment pays its request; money for a request that is no longer open is flagged."""
    if to_status != PaymentStatus.COMPLETED.value or payment.request_id is None:
        return
    if from_status in (PaymentStatus.SETTLED.value, PaymentStatus.REFUND_PENDING.value):
        return
    req = PaymentRequest.get_by_id(payment.request_id)
    if req.status == R.OPEN.value:
        set_request_status(req, R.PAID, payment=payment)
    else:
        what = "double payment: " if req.status == R.PAID.value else ""
        handle_unexpected(payment, f"{what}paid request {req.code}, which is {req.status}")
