"""What the public pay page shows and does, Flask-free: a request's public status (no personal data) and
the STK push to the phone a customer types.

Why a status of its own: the page polls it every few seconds from a customer's browser, so it answers
only what anyone holding the link may know: the amount, the merchant's description, where the request
stands, and, for the attempt this browser started (by its reference), how that attempt is going."""
from __future__ import annotations

from shared.models import Payment, PaymentRequest
from shared.states import REQUEST_TRANSITIONS, PaymentStatus, RequestStatus
from shared.timeutil import iso, utcnow

from ..payments.service import initiate, resolve_target

FINAL_REQUEST = {RequestStatus.PAID.value, RequestStatus.EXPIRED.value, RequestStatus.CANCELLED.value}
FAILED_ATTEMPT = {PaymentStatus.FAILED.value, PaymentStatus.CANCELLED.value, PaymentStatus.EXPIRED.value}
PAID_ATTEMPT = {PaymentStatus.COMPLETED.value, PaymentStatus.SETTLED.value, PaymentStatus.REFUND_PENDING.value,
                PaymentStatus.REFUNDED.value}

MESSAGES = {
    "en": {
        "DRAFT": "This payment link is not open yet.",
        "OPEN": "Not paid yet.",
        "PAID": "Paid.",
        "EXPIRED": "This payment link has expired.",
        "CANCELLED": "This payment link was cancelled.",
        "attempt.PENDING": "Check your phone for the M-Pesa prompt.",
        "attempt.PROCESSING": "Check your phone for the M-Pesa prompt and enter your PIN.",
        "attempt.failed": "The payment did not go through.",
    },
    "sw": {
        "DRAFT": "Kiungo hiki cha malipo bado hakijafunguliwa.",
        "OPEN": "Bado haijalipwa.",
        "PAID": "Imelipwa.",
        "EXPIRED": "Muda wa kiungo hiki cha malipo umekwisha.",
        "CANCELLED": "Kiungo hiki cha malipo kimeghairiwa.",
        "attempt.PENDING": "Angalia simu yako kwa ombi la M-Pesa.",
        "attempt.PROCESSING": "Angalia simu yako kwa ombi la M-Pesa kisha weka PIN yako.",
        "attempt.failed": "Malipo hayakufanikiwa.",
    },
}


def find(code: str) -> PaymentRequest | None:
    """The request behind a link; None for a code that is not one (the page answers 404)."""
    if not code.isdigit() or len(code) > 12:
        return None
    return PaymentRequest.get_or_none(PaymentRequest.code == code)


def is_expired(req: PaymentRequest) -> bool:
    return req.status == RequestStatus.EXPIRED.value or (
        req.status == RequestStatus.OPEN.value and req.expires_at is not None and req.expires_at <= utcnow())


def shown_status(req: PaymentRequest) -> str:
    """The request's status as a customer should see it: an OPEN request past its expiry is EXPIRED
    already (the expire-requests job closes it within a minute)."""
    return RequestStatus.EXPIRED.value if is_expired(req) else req.status


def attempt_of(req: PaymentRequest, reference: str | None) -> Payment | None:
    """The attempt this browser started, by the reference the page was given (never another's)."""
    if not reference:
        return None
    return Payment.get_or_none(Payment.reference == reference[:16], Payment.request == req)


def public_status(req: PaymentRequest, *, reference: str | None = None, lang: str = "en") -> dict:
    """The status JSON: code, status, status_message, last_event(_at), valid_transitions, transaction,
    expires_at, is_expired, updated_at, and the browser's own attempt. No phone, no name."""
    texts = MESSAGES.get(lang, MESSAGES["en"])
    status = shown_status(req)
    paid = _paying_payment(req) if status == RequestStatus.PAID.value else None
    attempt = attempt_of(req, reference)
    last_event, last_at = _last_event(req, attempt or paid)
    return {
        "code": req.code, "status": status, "status_message": texts[status],
        "amount": req.amount, "currency": "KES", "description": req.description,
        "last_event": last_event, "last_event_at": iso(last_at),
        "valid_transitions": [] if status in FINAL_REQUEST else sorted(
            s.value for s in REQUEST_TRANSITIONS[RequestStatus(req.status)]),
        "transaction": None if paid is None else {
            "id": paid.mpesa_receipt, "method": "mpesa", "time": iso(getattr(paid, "completed_at", None)
                                                                      or paid.updated_at),
            "amount": paid.amount, "currency": "KES"},
        "expires_at": iso(req.expires_at), "is_expired": status == RequestStatus.EXPIRED.value,
        "updated_at": iso(req.updated_at),
        "attempt": None if attempt is None else _attempt_json(attempt, texts),
        "final": status in FINAL_REQUEST,
    }


def pay(req: PaymentRequest, phone: str, *, language: str = "en") -> Payment:
    """A PENDING payment for the request, to the phone typed on the page (the caller sends the push).
    The usual rules hold: the request must be open with a fixed amount, one waiting payment per phone."""
    target = resolve_target(req.code)  # refuses a request that is no longer open
    return initiate(phone=phone, amount=target.amount, account=target.account, channel="web",
                    request=target.request, language=language)


def _paying_payment(req: PaymentRequest) -> Payment | None:
    return (Payment.select().where(Payment.request == req, Payment.status.in_(sorted(PAID_ATTEMPT)))
            .order_by(Payment.id).first())


def _last_event(req: PaymentRequest, payment: Payment | None):
    if payment is not None and payment.updated_at >= req.updated_at:
        return f"payment.{payment.status.lower()}", payment.updated_at
    return f"payment_request.{shown_status(req).lower()}", req.updated_at


def _attempt_json(payment: Payment, texts: dict) -> dict:
    status = payment.status
    if status in FAILED_ATTEMPT:
        message = texts["attempt.failed"] + (f" {payment.status_message}" if payment.status_message else "")
    elif status in PAID_ATTEMPT:
        message = texts["PAID"]
    else:
        message = texts.get(f"attempt.{status}", texts["attempt.PENDING"])
    return {"reference": payment.reference, "status": status, "message": message[:200],
            "failed": status in FAILED_ATTEMPT, "paid": status in PAID_ATTEMPT,
            "receipt": payment.mpesa_receipt if status in PAID_ATTEMPT else None}
