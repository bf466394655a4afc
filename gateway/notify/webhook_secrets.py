"""Each merchant's webhook signing secret (issue 13): one shared LIPA_WEBHOOK_SECRET let every merchant
forge every other merchant's events, since each held the key that verifies them all.

A merchant's secret is made with its first API key (create-api-key prints it once) and replaced by
rotate-webhook-secret; the old one keeps signing beside the new one for OVERLAP, so a merchant can
deploy the new secret without missing an event, then it is never used again. Secrets are sealed at
rest (shared/privacy). Events about requests staff created have no merchant: they are signed with
LIPA_WEBHOOK_SECRET, the sender's own secret.
"""
from __future__ import annotations

import secrets as random
from datetime import timedelta

from shared.db import write_tx
from shared.errors import InvalidInput
from shared.models import Merchant, Notification, PaymentRequest, WebhookSecret
from shared.timeutil import utcnow

PREFIX = "whsec_"
OVERLAP = timedelta(hours=24)


def _new(merchant: Merchant) -> str:
    secret = PREFIX + random.token_urlsafe(32)
    WebhookSecret.create(merchant=merchant, secret=secret)
    return secret


def _live(merchant_id: int, now):
    return (WebhookSecret.select()
            .where((WebhookSecret.merchant == merchant_id)
                   & (WebhookSecret.retires_at.is_null() | (WebhookSecret.retires_at > now)))
            .order_by(WebhookSecret.id.desc()))


def issue_first(merchant: Merchant) -> str | None:
    """The merchant's first secret, or None when it already has one (create-api-key for a second key)."""
    with write_tx():
        if WebhookSecret.select().where(WebhookSecret.merchant == merchant).exists():
            return None
        return _new(merchant)


def rotate(merchant_name: str, *, now=None) -> str:
    """A new secret for the merchant; the current ones sign beside it for OVERLAP, then retire."""
    now = now or utcnow()
    merchant = Merchant.get_or_none(Merchant.name == merchant_name.strip())
    if merchant is None:
        raise InvalidInput(f"no merchant named {merchant_name.strip()!r}", code="not_found")
    with write_tx():
        (WebhookSecret.update(retires_at=now + OVERLAP)
         .where((WebhookSecret.merchant == merchant) & WebhookSecret.retires_at.is_null()).execute())
        return _new(merchant)


def signing_secrets(merchant_id: int, *, now=None) -> list[str]:
    """The secrets a merchant's event is signed with now, newest first (two during an overlap)."""
    return [row.secret for row in _live(merchant_id, now or utcnow())]


def for_notification(row: Notification, *, now=None) -> list[str] | None:
    """Who signs this webhook: its request's merchant's secrets, or None (LIPA_WEBHOOK_SECRET) when staff
    created the request. A merchant with no secret gets [] (nothing signs: the send is held back)."""
    if row.request_id is None:
        return None
    merchant_id = (PaymentRequest.select(PaymentRequest.merchant)
                   .where(PaymentRequest.id == row.request_id).scalar())
    if merchant_id is None:
        return None
    return signing_secrets(merchant_id, now=now)
