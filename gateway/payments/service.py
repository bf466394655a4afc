"""Creating payments and sending their STK push. Knows nothing of Flask."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import peewee

from shared.db import locked, retry_locked, write_tx
from shared.errors import InvalidInput, NotAllowed, ProviderError
from shared.models import Payment, PaymentRequest
from shared.money import check_range, parse_amount
from shared.phone import mask_phone, normalize_phone
from shared.refs import payment_reference
from shared.states import PaymentStatus, RequestStatus
from shared.timeutil import utcnow

from .transitions import record, transition

log = logging.getLogger(__name__)
ACCOUNT_RE = re.compile(r"^[A-Za-z0-9-]{1,12}$", re.ASCII)
S = PaymentStatus


@dataclass(frozen=True)
class PayTarget:
    """What a customer pays: an account, and the amount when a payment request fixes it."""

    account: str
    amount: int | None = None
    request: PaymentRequest | None = None


def check_account(raw) -> str:
    """M-Pesa's AccountReference: 1-12 letters, digits or hyphens."""
    account = str(raw or "").strip()
    if not ACCOUNT_RE.match(account):
        raise InvalidInput("Account must be 1-12 letters or digits.", code="invalid_account")
    return account.upper()


def resolve_target(raw_account) -> PayTarget:
    """A payment-request code (when one is open) or a free-form account reference."""
    text = str(raw_account or "").strip()
    req = PaymentRequest.get_or_none(PaymentRequest.code == text) if text.isdigit() else None
    if req is None:
        return PayTarget(account=check_account(text))
    if req.status != RequestStatus.OPEN.value or (req.expires_at and req.expires_at <= utcnow()):
        state = "paid" if req.status == RequestStatus.PAID.value else "no longer open"
        raise NotAllowed(f"Bill {req.code} is {state}.", code="request_not_open")
    return PayTarget(account=req.account, amount=req.amount, request=req)


def active_payment(phone: str) -> Payment | None:
    """The phone's payment still waiting for M-Pesa, if any."""
    return Payment.get_or_none(Payment.active_phone == phone)  # a LookupHash: the phone is hashed


@retry_locked
def initiate(*, phone, amount, account, channel: str, actor: str | None = None,
             idempotency_key: str | None = None, request: PaymentRequest | None = None,
             retry_of: Payment | None = None, language: str = "en", merchant=None) -> Payment:
    """Validate and create a PENDING payment; the caller then sends the push with send_push().

    The same idempotency key returns the first payment; a phone with a payment still waiting
    for M-Pesa gets NotAllowed naming that payment.
    """
    phone = normalize_phone(phone)
    amount = check_range(amount) if isinstance(amount, int) else parse_amount(amount)
    account = check_account(account)
    if existing := _same_request(idempotency_key):
        return existing
    try:
        with write_tx():
            return _create(phone, amount, account, channel, actor or channel,
                           idempotency_key, request, retry_of, language, merchant)
    except peewee.IntegrityError:
        if existing := _same_request(idempotency_key):  # the same request, created meanwhile
            return existing
        busy = active_payment(phone)
        if busy:
            raise _busy(busy) from None
        raise


def _same_request(idempotency_key: str | None) -> Payment | None:
    """The payment an earlier request with this idempotency key created, if any."""
    return Payment.get_or_none(Payment.idempotency_key == idempotency_key) if idempotency_key else None


def _busy(payment: Payment) -> NotAllowed:
    return NotAllowed(
        f"Payment {payment.reference} is still waiting for M-Pesa. Finish it or wait.",
        code="payment_in_progress",
    )


def new_reference() -> str:
    """A payment reference no payment has yet (shared.refs makes them; the unique index has the last word)."""
    for _ in range(5):
        reference = payment_reference()
        if not Payment.select().where(Payment.reference == reference).exists():
            return reference
    return reference


def _create(phone, amount, account, channel, actor, idempotency_key, request, retry_of, language, merchant):
    busy = active_payment(phone)
    if busy:
        raise _busy(busy)
    payment = Payment.create(
        reference=new_reference(), phone=phone, amount=amount, account=account, channel=channel,
        status=S.PENDING.value, active_phone=phone, idempotency_key=idempotency_key,
        request=request, retry_of=retry_of, language=language, merchant=merchant,
        status_message="Waiting to send the M-Pesa prompt.",
    )
    linked = f", retry of {retry_of.reference}" if retry_of else ""
    record(payment, "created", actor=actor, reason=f"{channel} payment of {amount} KES to {account}{linked}")
    log.info("payment %s created for %s via %s", payment.reference, mask_phone(phone), channel)
    return payment


def retry(original: Payment, *, actor: str) -> Payment:
    """A retry is a new payment linked to the first, never a reuse of a finished one."""
    if original.status not in (S.FAILED.value, S.CANCELLED.value, S.EXPIRED.value):
        raise NotAllowed(f"Only a failed, cancelled or expired payment can be retried, not {original.status}.")
    newer = original.retries.order_by(Payment.id.desc()).first()
    if newer is not None:  # two operators retrying at once would prompt the customer twice
        raise NotAllowed(f"{original.reference} was already retried as {newer.reference}; retry that one instead.",
                         code="already_retried")
    return initiate(phone=original.phone, amount=original.amount, account=original.account,
                    channel=original.channel, actor=actor, request=original.request,
                    retry_of=original, language=original.language, merchant=original.merchant_id)


def send_push(payment_id: int, *, daraja, callback_url: str, actor: str = "stk-push") -> Payment:
    """Ask Daraja to prompt the customer; PROCESSING on acceptance, FAILED when refused.

    When Daraja's answer is ambiguous (timed out after sending, garbage), the payment stays
    PENDING with the reason recorded: the push may have reached the phone, so only a callback,
    a matching late callback or the sweep may decide it.
    """
    payment = Payment.get_by_id(payment_id)
    if payment.status != S.PENDING.value or payment.checkout_request_id or not _claim_push(payment, actor):
        return payment
    request_body = {"phone": mask_phone(payment.phone), "amount": payment.amount, "account": payment.account}
    try:
        accepted = daraja.stk_push(phone=payment.phone, amount=payment.amount,
                                   account_reference=payment.account, description=payment.description,
                                   callback_url=callback_url)
    except ProviderError as exc:
        return _push_refused(payment_id, exc, actor, request_body)
    except InvalidInput as exc:
        return _push_refused(payment_id, exc, actor, request_body)
    return _push_accepted(payment_id, accepted, actor)


@retry_locked
def _claim_push(payment: Payment, actor: str) -> bool:
    """Compare-and-set 0 -> 1 on push_attempts: a payment is pushed at most once, whoever asks (two
    processes answering the same USSD hop, a late re-read); a payment whose push went unanswered is
    decided by its callback or the sweep, never pushed again (a second push to the same phone would be
    refused by M-Pesa and could fail a payment the customer is paying)."""
    with write_tx():
        claimed = Payment.update(push_attempts=Payment.push_attempts + 1, updated_at=utcnow()).where(
            Payment.id == payment.id, Payment.push_attempts == 0,
            Payment.status == S.PENDING.value).execute()
        if claimed:
            record(payment, "stk_request", actor=actor, reason="STK push sent to M-Pesa")
        return bool(claimed)


@retry_locked
def _push_accepted(payment_id: int, accepted, actor: str) -> Payment:
    with write_tx():
        payment = locked(Payment, payment_id)
        if payment.status != S.PENDING.value:
            record(payment, "stk_response", actor=actor, reason="push accepted after the payment moved on",
                   payload=accepted.raw)
            return payment
        transition(payment, S.PROCESSING, actor=actor, reason="Daraja accepted the STK push",
                   payload=accepted.raw, message="Waiting for the customer to enter the M-Pesa PIN.",
                   checkout_request_id=accepted.checkout_request_id,
                   merchant_request_id=accepted.merchant_request_id)
        return payment


@retry_locked
def _push_refused(payment_id: int, exc, actor: str, request_body: dict) -> Payment:
    with write_tx():
        payment = locked(Payment, payment_id)
        words = getattr(exc, "customer_message", None) or exc.message
        payload = {"request": request_body, "error": type(exc).__name__,
                   "code": getattr(exc, "error_code", None) or exc.code, "message": exc.message}
        if getattr(exc, "ambiguous", False):
            payment.status_message = "M-Pesa did not confirm the request; checking."
            payment.save()
            record(payment, "stk_unknown", actor=actor, reason=exc.message, payload=payload)
            log.warning("payment %s push outcome unknown: %s", payment.reference, exc.message)
        elif payment.status == S.PENDING.value:
            transition(payment, S.FAILED, actor=actor, reason=exc.message, payload=payload,
                       message=words, result_desc=exc.message[:255])
        return payment
