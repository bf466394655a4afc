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
    # C2B: production Daraja sends a SHA-256 hash of the payer's number, not the number (phone stays "").
    payer_hash = pw.CharField(max_length=64, null=True)
    payer_name = pw.CharField(max_length=100, null=True)
    refunded_amount = pw.IntegerField(default=0)

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
        indexes = (
            (("recipient", "kind", "created_at"), False),  # per-phone reply rate limit
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


class JobState(BaseModel):
    """One row per scheduled job: pause switch and the lease that lets one process run it at a time."""

    name = pw.CharField(max_length=40, unique=True)
    paused = pw.BooleanField(default=False)
    lease_owner = pw.CharField(max_length=64, null=True)
    lease_expires_at = pw.DateTimeField(null=True)
    last_run_at = pw.DateTimeField(null=True)


class JobRun(BaseModel):
    """Every run of a job: when, where, how it ended, what it did."""

    job = pw.CharField(max_length=40, index=True)
    worker = pw.CharField(max_length=64)
    trigger = pw.CharField(max_length=24, default="schedule")  # schedule, manual:<staff>
    started_at = pw.DateTimeField(default=utcnow, index=True)
    finished_at = pw.DateTimeField(null=True)
    outcome = pw.CharField(max_length=12, default="RUNNING")  # RUNNING, OK, FAILED
    counts = JSONText(null=True)
    error = pw.TextField(default="")


class StatementImport(BaseModel):
    """One uploaded M-Pesa statement and its reconciliation run; the same file twice is one import."""

    sha256 = pw.CharField(max_length=64, unique=True)
    filename = pw.CharField(max_length=255, default="")
    uploaded_by = pw.CharField(max_length=64, default="")
    period = pw.CharField(max_length=100, default="")
    lines = pw.IntegerField(default=0)
    matched = pw.IntegerField(default=0)
    exceptions = pw.IntegerField(default=0)
    status = pw.CharField(max_length=12, default="DONE")
    created_at = pw.DateTimeField(default=utcnow, index=True)


class StatementLine(BaseModel):
    """A money-in line of a statement (charges and withdrawals are not kept)."""

    statement = pw.ForeignKeyField(StatementImport, backref="statement_lines")
    line_no = pw.IntegerField()
    receipt = pw.CharField(max_length=32, unique=True)
    completed_at = pw.DateTimeField(null=True)
    details = pw.CharField(max_length=255, default="")
    amount = pw.IntegerField()
    account = pw.CharField(max_length=40, default="")
    other_party = pw.CharField(max_length=100, default="")
    payment = pw.ForeignKeyField(Payment, null=True, backref="statement_lines")
    match = pw.CharField(max_length=16, default="UNMATCHED", index=True)  # RECEIPT, FUZZY, UNMATCHED


class ReconException(TimestampedModel):
    """Something the statement and Lipa disagree on; open until staff resolve it with a note."""

    statement = pw.ForeignKeyField(StatementImport, backref="exception_rows")
    kind = pw.CharField(max_length=24, index=True)  # missing_in_lipa, missing_in_statement, amount_mismatch, duplicate
    payment = pw.ForeignKeyField(Payment, null=True, backref="recon_exceptions")
    line = pw.ForeignKeyField(StatementLine, null=True, backref="recon_exceptions")
    details = pw.CharField(max_length=255, default="")
    status = pw.CharField(max_length=10, default="OPEN", index=True)
    resolved_by = pw.CharField(max_length=64, null=True)
    resolution_note = pw.CharField(max_length=500, default="")
    resolved_at = pw.DateTimeField(null=True)


class AuditLog(BaseModel):
    """Who did what, when and why: every staff action and automatic money decision."""

    actor = pw.CharField(max_length=64, index=True)
    action = pw.CharField(max_length=40)
    target_type = pw.CharField(max_length=24)
    target_id = pw.CharField(max_length=40)
    reason = pw.CharField(max_length=500, default="")
    details = JSONText(null=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("target_type", "target_id"), False),)  # a payment's staff actions in its timeline


class Staff(TimestampedModel):
    """A back-office user of the desktop app and the admin API."""

    username = pw.CharField(max_length=64, unique=True)
    password_hash = pw.CharField(max_length=255)
    role = pw.CharField(max_length=12)  # viewer, operator, admin
    active = pw.BooleanField(default=True)


class StaffToken(BaseModel):
    """A login's bearer token; only its SHA-256 is stored."""

    staff = pw.ForeignKeyField(Staff, backref="tokens")
    token_hash = pw.CharField(max_length=64, unique=True)
    expires_at = pw.DateTimeField(index=True)
    created_at = pw.DateTimeField(default=utcnow)


class ApiKey(BaseModel):
    """A merchant system's key for creating payments and payment requests; only its hash is stored."""

    merchant = pw.ForeignKeyField(Merchant, backref="api_keys")
    prefix = pw.CharField(max_length=16)
    key_hash = pw.CharField(max_length=64, unique=True)
    revoked = pw.BooleanField(default=False)
    created_at = pw.DateTimeField(default=utcnow)


class IdempotencyRecord(BaseModel):
    """The first answer to a request with an Idempotency-Key, replayed for the same key and body."""

    scope = pw.CharField(max_length=80)  # who: merchant:<id> or staff:<id>
    key = pw.CharField(max_length=200)
    request_hash = pw.CharField(max_length=64)
    status_code = pw.IntegerField()
    response_body = pw.TextField()
    created_at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("scope", "key"), True),)


class RateLimitBucket(BaseModel):
    """Requests counted per client, route group and fixed window, shared by every process."""

    bucket = pw.CharField(max_length=160)
    window_start = pw.IntegerField()
    hits = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("bucket", "window_start"), True),)


class Receipt(BaseModel):
    """A customer receipt: its id is the sequential receipt number; reprints are counted."""

    payment = pw.ForeignKeyField(Payment, unique=True, backref="receipt_rows")
    prints = pw.IntegerField(default=0)
    created_at = pw.DateTimeField(default=utcnow)


class Setting(BaseModel):
    """Key/value settings kept with the data, e.g. the local callback token."""

    key = pw.CharField(max_length=64, unique=True)
    value = pw.TextField()


class SchemaVersion(BaseModel):
    version = pw.IntegerField()
    applied_at = pw.DateTimeField(default=utcnow)


ALL_MODELS = [
    Merchant, PaymentRequest, Payment, PaymentEvent, InboxMessage, UssdSession,
    PhonePreference, ProviderToken, Alert, Setting, Notification, Refund, JobState, JobRun,
    StatementImport, StatementLine, ReconException, AuditLog, Staff, StaffToken, ApiKey,
    IdempotencyRecord, RateLimitBucket, Receipt,
]
