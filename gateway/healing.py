"""Heal provider messages stored but never applied (a crash between storing and applying)."""
from __future__ import annotations

import logging
from datetime import timedelta

from shared.models import InboxMessage
from shared.timeutil import utcnow

from .mpesa.c2b import apply_c2b
from .mpesa.callbacks import apply_stk_callback
from .refunds.results import apply_result, apply_timeout
from .sms import commands, delivery

log = logging.getLogger(__name__)


def process_inbox(*, daraja, callback_url: str, older_than_s: float = 30.0, limit: int = 200) -> int:
    """Apply every RECEIVED inbox row older than ``older_than_s``; each applier is idempotent."""
    appliers = {
        "daraja.stk": apply_stk_callback,
        commands.SOURCE: lambda row_id: commands.handle_inbound(row_id, daraja=daraja, callback_url=callback_url),
        delivery.SOURCE: delivery.apply_delivery,
        "daraja.c2b": apply_c2b,
        "daraja.result": apply_result,
        "daraja.timeout": apply_timeout,
    }
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    rows = list(InboxMessage.select(InboxMessage.id, InboxMessage.source).where(
        InboxMessage.status == "RECEIVED", InboxMessage.source.in_(list(appliers)),
        InboxMessage.received_at <= cutoff).order_by(InboxMessage.id).limit(limit))
    for row in rows:
        appliers[row.source](row.id)
    if rows:
        log.info("process-inbox applied %d stored message(s)", len(rows))
    return len(rows)
