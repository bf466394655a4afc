"""The back office's tables: alerts, jobs, reconciliation, audit, staff and API keys, idempotency, rate
limits, settings, the schema version. Statement lines and stored API answers hold personal data: sealed."""
from __future__ import annotations

import peewee as pw

from ..db import BaseModel
from .payments import InboxMessage, JSONText, Merchant, Payment, TimestampedModel
from ..privacy.sealed import SealedText
from ..timeutil import utcnow


class ProviderToken(BaseModel):
    """A cached provider access token shared by every thread and process."""

    name = pw.CharField(max_length=32, unique=True)
    token = SealedText()  # a live bearer credential for Daraja: sealed like personal data (issue 13)
    expires_at = pw.DateTimeField()


class Alert(BaseModel):
    """Something staff must look at: late money, mismatches, unknown callbacks."""

    kind = pw.CharField(max_length=32, index=True)
    message = pw.CharField(max_length=255)
    payment = pw.ForeignKeyField(Payment, null=True, backref="alerts")
    inbox = pw.ForeignKeyField(InboxMessage, null=True)
    acknowledged = pw.BooleanField(default=False)
    created_at = pw.DateTimeField(default=utcnow, index=True)


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
    status = pw.CharField(max_length=12, default="DONE")  # DONE; or QUEUED -> IMPORTING -> DONE / FAILED / CANCELLED
    created_at = pw.DateTimeField(default=utcnow, index=True)
    # A background import (large statements): its progress, its lease (a process that dies mid-way lets
    # another resume after it), and why it failed.
    lines_total = pw.IntegerField(default=0)
    lines_done = pw.IntegerField(default=0)
    lease_until = pw.DateTimeField(null=True)
    error = pw.CharField(max_length=255, default="")


class StatementUpload(BaseModel):
    """The file of a background import, kept (sealed: payers' numbers and names) until it is done."""

    statement = pw.ForeignKeyField(StatementImport, unique=True, backref="uploads", on_delete="CASCADE")
    body = SealedText(default="")


class StatementLine(BaseModel):
    """A money-in line of a statement (charges and withdrawals are not kept)."""

    statement = pw.ForeignKeyField(StatementImport, backref="statement_lines")
    line_no = pw.IntegerField()
    receipt = pw.CharField(max_length=32, unique=True)
    completed_at = pw.DateTimeField(null=True)
    details = SealedText(default="")  # "Customer Payment from 2547****904 - MARY W"
    amount = pw.IntegerField()
    account = pw.CharField(max_length=40, default="")
    other_party = SealedText(default="")  # the payer's (masked) number and name
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


class Approval(TimestampedModel):
    """A manual money change over LIPA_FOUR_EYES_OVER waiting for a second admin (four eyes)."""

    action = pw.CharField(max_length=16)  # resolve, refund
    payment = pw.ForeignKeyField(Payment, backref="approvals")
    amount = pw.IntegerField()
    params = JSONText()  # what to carry out: {"status", "receipt"} or {"amount", "method"}
    reason = pw.CharField(max_length=255)
    requested_by = pw.CharField(max_length=64)
    state = pw.CharField(max_length=10, default="pending", index=True)  # pending, approved, rejected
    decided_by = pw.CharField(max_length=64, null=True)
    decision_reason = pw.CharField(max_length=255, default="")
    outcome = JSONText(null=True)  # what carrying it out produced (verification or refund id)


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
    last_used_at = pw.DateTimeField(null=True)  # the idle timeout (LIPA_SESSION_IDLE_S) counts from here


class ApiKey(BaseModel):
    """A merchant system's key for creating payments and payment requests; only its hash is stored."""

    merchant = pw.ForeignKeyField(Merchant, backref="api_keys")
    prefix = pw.CharField(max_length=16)
    key_hash = pw.CharField(max_length=64, unique=True)
    revoked = pw.BooleanField(default=False)
    created_at = pw.DateTimeField(default=utcnow)


class WebhookSecret(BaseModel):
    """A merchant's webhook signing secret (issue 13), sealed: each merchant verifies only its own events.
    A rotated secret keeps signing beside its successor until ``retires_at`` (24 h), then never again."""

    merchant = pw.ForeignKeyField(Merchant, backref="webhook_secrets", index=True)
    secret = SealedText()
    created_at = pw.DateTimeField(default=utcnow)
    retires_at = pw.DateTimeField(null=True)


class IdempotencyRecord(BaseModel):
    """The first answer to a request with an Idempotency-Key, replayed for the same key and body."""

    scope = pw.CharField(max_length=80)  # who: merchant:<id> or staff:<id>
    key = pw.CharField(max_length=200)
    request_hash = pw.CharField(max_length=64)
    status_code = pw.IntegerField()
    response_body = SealedText()  # a payment or request as JSON: its phone
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


class LoginFailure(BaseModel):
    """Failed logins counted per username or per client address (``user:<name>``, ``addr:<ip>``), with the
    lock that grows with them; a success clears the username's row."""

    key = pw.CharField(max_length=160, unique=True)
    failures = pw.IntegerField(default=0)
    locked_until = pw.DoubleField(default=0)  # Unix time (a PostgreSQL REAL would round it to minutes)
    last_failure_at = pw.DoubleField(default=0)


class Setting(BaseModel):
    """Key/value settings kept with the data, e.g. the local callback token."""

    key = pw.CharField(max_length=64, unique=True)
    value = pw.TextField()


class SchemaVersion(BaseModel):
    version = pw.IntegerField()
    applied_at = pw.DateTimeField(default=utcnow)
