"""The tables, in two modules (payment_models: the money and its messages; ops_models: the back office),
gathered here so ``from shared.models import Payment`` and ``ALL_MODELS`` work everywhere."""
from __future__ import annotations

from .operations import (
    Alert, ApiKey, Approval, AuditLog, IdempotencyRecord, JobRun, JobState, LoginFailure, ProviderToken,
    RateLimitBucket, ReconException, SchemaVersion, Setting, Staff, StaffToken, StatementImport, StatementLine,
    StatementUpload, WebhookSecret,
)
from .payments import (
    InboxMessage, JSONText, LateCallback, Merchant, Notification, Payment, PaymentEvent, PaymentRequest,
    PhonePreference, Receipt, Refund, TimestampedModel, UssdSession, Verification,
)

ALL_MODELS = [
    Merchant, PaymentRequest, Payment, PaymentEvent, InboxMessage, UssdSession,
    PhonePreference, ProviderToken, Alert, Setting, Notification, Refund, JobState, JobRun,
    StatementImport, StatementLine, ReconException, AuditLog, Staff, StaffToken, ApiKey,
    IdempotencyRecord, RateLimitBucket, Receipt, Verification, Approval, LateCallback, StatementUpload,
    WebhookSecret, LoginFailure,
]

__all__ = [model.__name__ for model in ALL_MODELS] + ["ALL_MODELS", "JSONText", "SchemaVersion", "TimestampedModel"]
