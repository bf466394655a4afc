"""The payment side's tables: payments, their requests, events, raw provider messages, the outbox, USSD
sessions, phone preferences, refunds, receipts. Payments and their events are never deleted; status changes
go through payments.transition. Phones, names and raw provider bodies are sealed (shared/sealed.py)."""
from __future__ import annotations

import json

import peewee as pw

from ..db import BaseModel
from ..privacy.sealed import KeepsLookups, LookupHash, SealedJSON, SealedText
from ..states import PaymentStatus, RequestStatus
from ..timeutil import utcnow


class JSONText(pw.TextField):
    """JSON kept as text, so SQLite and PostgreSQL store it the same way."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, sort_keys=True, default=str)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class TimestampedModel(BaseModel):
    created_at = pw.DateTimeField(default=utcnow, index=True)
    updated_at = pw.DateTimeField(default=utcnow)


class Merchant(TimestampedModel):
    """A system that creates payment requests through the API (keys come with issue 5)."""

    name = pw.CharField(max_length=100, unique=True)
    email = SealedText(null=True)  # create-api-key --email: where its daily settlement summary goes (issue 16)


class PaymentRequest(TimestampedModel):
    """A bill or payment link with a short numeric code a customer can type on a feature phone."""

    code = pw.CharField(max_length=12, unique=True)
    amount = pw.IntegerField(null=True)  # None: the customer chooses the amount
    account = pw.CharField(max_length=12)
    description = pw.CharField(max_length=100, default="")
    phone = SealedText(null=True)
    email = SealedText(null=True)  # the payer's: the receipt e-mail goes here once the request is PAID
    status = pw.CharField(max_length=12, default=RequestStatus.OPEN.value, index=True)
    expires_at = pw.DateTimeField(null=True)
    callback_url = pw.CharField(max_length=500, null=True)
    idempotency_key = pw.CharField(max_length=200, null=True, unique=True)
    merchant = pw.ForeignKeyField(Merchant, null=True, backref="requests")


class Payment(KeepsLookups, TimestampedModel):
    """One attempt to take money by STK push (or a C2B payment that arrived by itself)."""

    reference = pw.CharField(max_length=16, unique=True)
    phone = SealedText(lookup="phone_hash")  # "" for a C2B whose payer Daraja sent only as a hash
    phone_hash = LookupHash("phone", index=True)  # search by phone here: Payment.phone_hash == "2547…"
    amount = pw.IntegerField()
    account = pw.CharField(max_length=20, index=True)
    description = pw.CharField(max_length=13, default="Payment")
    status = pw.CharField(max_length=16, default=PaymentStatus.PENDING.value, index=True)
    status_message = pw.CharField(max_length=200, default="")
    channel = pw.CharField(max_length=8, index=True)  # ussd, sms, api, c2b, staff, web (the pay page)
    request = pw.ForeignKeyField(PaymentRequest, null=True, backref="payments")
    retry_of = pw.ForeignKeyField("self", null=True, backref="retries")
    # The phone's look-up hash while PENDING/PROCESSING, NULL otherwise: the unique index makes "one active
    # payment per phone" hold across processes without a lock. Assign the plain phone; it is hashed.
    active_phone = LookupHash("phone", derived=False, unique=True)
    idempotency_key = pw.CharField(max_length=200, null=True, unique=True)
    merchant_request_id = pw.CharField(max_length=64, null=True)
    checkout_request_id = pw.CharField(max_length=64, null=True, unique=True)
    mpesa_receipt = pw.CharField(max_length=32, null=True, unique=True)
    result_code = pw.CharField(max_length=32, null=True)
    result_desc = pw.CharField(max_length=255, null=True)
    language = pw.CharField(max_length=2, default="en")
    flagged = pw.BooleanField(default=False, index=True)
    flag_reason = pw.CharField(max_length=255, default="")
    push_attempts = pw.IntegerField(default=0)
    completed_at = pw.DateTimeField(null=True)
    # C2B: production Daraja sends a SHA-256 hash of the payer's number, not the number (phone stays "").
    # An unkeyed SHA-256 of a phone is as good as the phone (10^9 guesses), so it is sealed too.
    payer_hash = SealedText(null=True, lookup="payer_lookup")
    payer_lookup = LookupHash("payer_hash")
    payer_name = SealedText(null=True)
    refunded_amount = pw.IntegerField(default=0)
    # The merchant whose API key created it (issue 13): a merchant lists these and its requests' payments.
    merchant = pw.ForeignKeyField(Merchant, null=True, backref="payments", index=True)

    class Meta:
        indexes = ((("phone_hash", "created_at"), False),)
        # save() writes the columns that changed, not all 30: a status change no longer re-seals the phone and
        # payer fields (Fernet, the costliest part of a callback), and a stale copy of the row in one process
        # cannot write back columns another process changed meanwhile. Safe because no field holds a mutable
        # value (a dict changed in place would not be seen as changed).
        only_save_dirty = True


class Notification(KeepsLookups, TimestampedModel):
    """The outbox: one row per message to send (SMS, merchant webhook), written in the same
    transaction as the change it reports, sent later by the dispatcher with retries."""

    channel = pw.CharField(max_length=8, index=True)  # sms, webhook, email
    kind = pw.CharField(max_length=40)  # payment_completed, reply, webhook_payment_paid, ...
    payment = pw.ForeignKeyField(Payment, null=True, backref="notifications")
    request = pw.ForeignKeyField(PaymentRequest, null=True, backref="notifications")
    recipient = SealedText(lookup="recipient_hash")  # 2547... for SMS, the URL for a webhook
    recipient_hash = LookupHash("recipient")
    language = pw.CharField(max_length=2, default="en")
    body = SealedText()
    status = pw.CharField(max_length=12, default="QUEUED", index=True)
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(default=utcnow, index=True)
    claimed_by = pw.CharField(max_length=64, null=True)
    claim_expires_at = pw.DateTimeField(null=True)
    dedupe_key = pw.CharField(max_length=128, null=True, unique=True)
    provider_message_id = pw.CharField(max_length=64, null=True, unique=True)
    provider_status = pw.CharField(max_length=40, default="")
    cost = pw.CharField(max_length=32, default="")
    failure_reason = pw.CharField(max_length=255, default="")
    sent_at = pw.DateTimeField(null=True)
    delivered_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = (
            (("recipient_hash", "kind", "created_at"), False),  # per-phone reply rate limit
            (("updated_at", "id"), False),  # the live events feed
        )


class PaymentEvent(BaseModel):
    """Append-only timeline: every status change (and provider exchange) of a payment."""

    payment = pw.ForeignKeyField(Payment, backref="events", on_delete="RESTRICT")
    kind = pw.CharField(max_length=24, default="transition")  # transition, stk_request, callback, flag…
    from_status = pw.CharField(max_length=16, null=True)
    to_status = pw.CharField(max_length=16, null=True)
    actor = pw.CharField(max_length=64)  # ussd, sms, api, daraja-callback, sweep, staff:<name>
    reason = pw.CharField(max_length=255, default="")
    payload = SealedJSON(null=True)  # provider exchanges: phone numbers, payer names
    created_at = pw.DateTimeField(default=utcnow, index=True)


class InboxMessage(BaseModel):
    """A provider message stored raw, committed before we answer, then applied idempotently."""

    source = pw.CharField(max_length=24, index=True)  # daraja.stk, daraja.c2b, at.sms, at.delivery
    body = SealedText()
    dedupe_key = pw.CharField(max_length=128, null=True, unique=True)
    remote_addr = pw.CharField(max_length=64, default="")
    status = pw.CharField(max_length=12, default="RECEIVED", index=True)
    note = pw.CharField(max_length=255, default="")
    payment = pw.ForeignKeyField(Payment, null=True, backref="inbox")
    received_at = pw.DateTimeField(default=utcnow, index=True)
    processed_at = pw.DateTimeField(null=True)


class LateCallback(TimestampedModel):
    """A success callback for a payment already FAILED, CANCELLED or EXPIRED: kept "to verify" until an STK
    query for its CheckoutRequestID decides it (TO_VERIFY -> CONFIRMED, CONTRADICTED or DECIDED). The stored
    callback (``inbox``) is never pruned while a row points at it."""

    payment = pw.ForeignKeyField(Payment, backref="late_callbacks", on_delete="RESTRICT")
    inbox = pw.ForeignKeyField(InboxMessage, unique=True, backref="late_callback", on_delete="RESTRICT")
    checkout_request_id = pw.CharField(max_length=64)
    receipt = pw.CharField(max_length=32)
    status = pw.CharField(max_length=12, default="TO_VERIFY", index=True)
    attempts = pw.IntegerField(default=0)
    last_answer = pw.CharField(max_length=255, default="")
    decided_at = pw.DateTimeField(null=True)


class UssdSession(TimestampedModel):
    """A USSD session lives in the database so any gateway process can answer any hop."""

    session_id = pw.CharField(max_length=100, unique=True)
    phone = SealedText()
    service_code = pw.CharField(max_length=32, default="")
    inputs = JSONText(default=list)
    last_text = pw.TextField(default="")
    last_response = pw.TextField(default="")
    payment = pw.ForeignKeyField(Payment, null=True)


class PhonePreference(KeepsLookups, TimestampedModel):
    """Per-phone choices: language, and whether notifications may be sent. Found by phone_hash."""

    phone = SealedText(lookup="phone_hash")
    phone_hash = LookupHash("phone", unique=True)
    language = pw.CharField(max_length=2, default="en")
    notifications = pw.BooleanField(default=True)


class Refund(TimestampedModel):
    """Money sent back for a COMPLETED or SETTLED payment, by Daraja reversal (or B2C)."""

    payment = pw.ForeignKeyField(Payment, backref="refunds")
    amount = pw.IntegerField()
    reason = pw.CharField(max_length=255)
    requested_by = pw.CharField(max_length=64)  # staff:<name>, auto-refund
    method = pw.CharField(max_length=12, default="reversal")  # reversal, b2c
    status = pw.CharField(max_length=12, default="INITIATED", index=True)
    originator_conversation_id = pw.CharField(max_length=64, unique=True)
    conversation_id = pw.CharField(max_length=64, null=True, unique=True)
    transaction_id = pw.CharField(max_length=32, null=True)
    result_code = pw.CharField(max_length=32, null=True)
    result_desc = pw.CharField(max_length=255, default="")


class Verification(TimestampedModel):
    """A receipt being checked with M-Pesa's Transaction Status before anything moves money on it.

    ``purpose`` says what to do once confirmed (``complete_payment``); state requested → confirmed,
    refused (M-Pesa does not know it, or another amount) or error."""

    receipt = pw.CharField(max_length=32, index=True)
    amount = pw.IntegerField()
    purpose = pw.CharField(max_length=24)
    payment = pw.ForeignKeyField(Payment, null=True, backref="verifications")
    target_id = pw.CharField(max_length=40, default="")  # e.g. the reconciliation exception confirmed
    state = pw.CharField(max_length=12, default="requested", index=True)
    requested_by = pw.CharField(max_length=64)
    reason = pw.CharField(max_length=255, default="")
    originator_conversation_id = pw.CharField(max_length=64, null=True, unique=True)
    conversation_id = pw.CharField(max_length=64, null=True, unique=True)
    result_code = pw.CharField(max_length=32, null=True)
    message = pw.CharField(max_length=255, default="")
    attempts = pw.IntegerField(default=0)


class Receipt(BaseModel):
    """A customer receipt: its id is the sequential receipt number; reprints are counted."""

    payment = pw.ForeignKeyField(Payment, unique=True, backref="receipt_rows")
    prints = pw.IntegerField(default=0)
    created_at = pw.DateTimeField(default=utcnow)
