"""The tables. Payments and their events are never deleted; status changes go through payments.transition."""
from __future__ import annotations

import json

import peewee as pw

from .db import BaseModel
from .states import PaymentStatus, RequestStatus
from .timeutil import utcnow


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


class PaymentRequest(TimestampedModel):
    """A bill or payment link with a short numeric code a customer can type on a feature phone."""

    code = pw.CharField(max_length=12, unique=True)
    amount = pw.IntegerField(null=True)  # None: the customer chooses the amount
    account = pw.CharField(max_length=12)
    description = pw.CharField(max_length=100, default="")
    phone = pw.CharField(max_length=12, null=True)
    status = pw.CharField(max_length=12, default=RequestStatus.OPEN.value, index=True)
    expires_at = pw.DateTimeField(null=True)
    callback_url = pw.CharField(max_length=500, null=True)
    idempotency_key = pw.CharField(max_length=200, null=True, unique=True)
    merchant = pw.ForeignKeyField(Merchant, null=True, backref="requests")


class Payment(TimestampedModel):
    """One attempt to take money by STK push (or a C2B payment that arrived by itself)."""

    reference = pw.CharField(max_length=16, unique=True)
    phone = pw.CharField(max_length=12, index=True)
    amount = pw.IntegerField()
    account = pw.CharField(max_length=20, index=True)
    description = pw.CharField(max_length=13, default="Payment")
    status = pw.CharField(max_length=16, default=PaymentStatus.PENDING.value, index=True)
    status_message = pw.CharField(max_length=200, default="")
    channel = pw.CharField(max_length=8, index=True)  # ussd, sms, api, c2b, staff
    request = pw.ForeignKeyField(PaymentRequest, null=True, backref="payments")
    retry_of = pw.ForeignKeyField("self", null=True, backref="retries")
    # Set to the phone while PENDING/PROCESSING, NULL otherwise: the unique index makes "one active
    # payment per phone" hold across processes without a lock.
    active_phone = pw.CharField(max_length=12, null=True, unique=True)
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

    class Meta:
        indexes = ((("phone", "created_at"), False),)


class Notification(TimestampedModel):
    """The outbox: one row per message to send (SMS, merchant webhook), written in the same
    transaction as the change it reports, sent later by the dispatcher with retries."""

    channel = pw.CharField(max_length=8, index=True)  # sms, webhook, email
    kind = pw.CharField(max_length=40)  # payment_completed, reply, webhook_payment_paid, ...
    payment = pw.ForeignKeyField(Payment, null=True, backref="notifications")
    request = pw.ForeignKeyField(PaymentRequest, null=True, backref="notifications")
    recipient = pw.CharField(max_length=500)  # 2547... for SMS, the URL for a webhook
    language = pw.CharField(max_length=2, default="en")
    body = pw.TextField()
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
        indexes = ((("recipient", "kind", "created_at"), False),)  # per-phone reply rate limit


class PaymentEvent(BaseModel):
    """Append-only timeline: every status change (and provider exchange) of a payment."""

    payment = pw.ForeignKeyField(Payment, backref="events", on_delete="RESTRICT")
    kind = pw.CharField(max_length=24, default="transition")  # transition, stk_request, callback, flag…
    from_status = pw.CharField(max_length=16, null=True)
    to_status = pw.CharField(max_length=16, null=True)
    actor = pw.CharField(max_length=64)  # ussd, sms, api, daraja-callback, sweep, staff:<name>
    reason = pw.CharField(max_length=255, default="")
    payload = JSONText(null=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)


class InboxMessage(BaseModel):
    """A provider message stored raw, committed before we answer, then applied idempotently."""

    source = pw.CharField(max_length=24, index=True)  # daraja.stk, daraja.c2b, at.sms, at.delivery
    body = pw.TextField()
    dedupe_key = pw.CharField(max_length=128, null=True, unique=True)
    remote_addr = pw.CharField(max_length=64, default="")
    status = pw.CharField(max_length=12, default="RECEIVED", index=True)
    note = pw.CharField(max_length=255, default="")
    payment = pw.ForeignKeyField(Payment, null=True, backref="inbox")
    received_at = pw.DateTimeField(default=utcnow, index=True)
    processed_at = pw.DateTimeField(null=True)


class UssdSession(TimestampedModel):
    """A USSD session lives in the database so any gateway process can answer any hop."""

    session_id = pw.CharField(max_length=100, unique=True)
    phone = pw.CharField(max_length=12)
    service_code = pw.CharField(max_length=32, default="")
    inputs = JSONText(default=list)
    last_text = pw.TextField(default="")
    last_response = pw.TextField(default="")
    payment = pw.ForeignKeyField(Payment, null=True)


class PhonePreference(TimestampedModel):
    """Per-phone choices: language, and whether notifications may be sent."""

    phone = pw.CharField(max_length=12, unique=True)
    language = pw.CharField(max_length=2, default="en")
    notifications = pw.BooleanField(default=True)


class ProviderToken(BaseModel):
    """A cached provider access token shared by every thread and process."""

    name = pw.CharField(max_length=32, unique=True)
    token = pw.TextField()
    expires_at = pw.DateTimeField()


class Alert(BaseModel):
    """Something staff must look at: late money, mismatches, unknown callbacks."""

    kind = pw.CharField(max_length=32, index=True)
    message = pw.CharField(max_length=255)
    payment = pw.ForeignKeyField(Payment, null=True, backref="alerts")
    inbox = pw.ForeignKeyField(InboxMessage, null=True)
    acknowledged = pw.BooleanField(default=False)
    created_at = pw.DateTimeField(default=utcnow, index=True)


class Setting(BaseModel):
    """Key/value settings kept with the data, e.g. the local callback token."""

    key = pw.CharField(max_length=64, unique=True)
    value = pw.TextField()


class SchemaVersion(BaseModel):
    version = pw.IntegerField()
    applied_at = pw.DateTimeField(default=utcnow)


ALL_MODELS = [
    Merchant, PaymentRequest, Payment, PaymentEvent, InboxMessage, UssdSession,
    PhonePreference, ProviderToken, Alert, Setting, Notification,
]
