"""The link SMS (issue 16): a request opened for a phone tells that phone how to pay it, once.

Queued in the request's own transaction through the outbox, so it leaves only if the request exists and
never twice (its dedupe key is the request's id). A text that cannot be built is logged and skipped: a
merchant's request must not fail because of the SMS about it."""
from __future__ import annotations

import logging

from shared.models import PaymentRequest

from ..texts.links import render_link
from . import outbox, preferences

log = logging.getLogger(__name__)
KIND = "request_link"


def queue_link_sms(req: PaymentRequest, *, url: str, dial: str) -> None:
    """Queue the SMS with the amount, the merchant, the link and the dial string; nothing without a phone."""
    if not req.phone or not dial:
        return
    try:
        lang = preferences.language_for(req.phone)
        merchant = req.merchant.name if req.merchant_id else req.account
        text = render_link(lang, amount=req.amount, merchant=merchant, url=url, dial=dial)
        outbox.enqueue(channel="sms", kind=KIND, recipient=req.phone, body=text, request=req, language=lang,
                       dedupe_key=f"sms:request:{req.id}:link")
    except Exception:  # noqa: BLE001 - the request stands whatever happens to its SMS
        log.exception("link SMS for payment request %s not queued", req.id)
