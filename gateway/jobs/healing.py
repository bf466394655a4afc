"""Heal provider messages stored but never applied (a crash between storing and applying)."""
from __future__ import annotations

import logging
from datetime import timedelta

from shared.db import UNAVAILABLE
from shared.models import InboxMessage
from shared.timeutil import utcnow

from ..mpesa.c2b import apply_c2b
from ..mpesa.callbacks import apply_stk_callback
from ..refunds.results import apply_result, apply_timeout
from ..sms import commands, delivery

log = logging.getLogger(__name__)


def process_inbox(*, daraja, callback_url: str, older_than_s: float = 30.0, limit: int = 200) -> int:
    """Apply every RECEIVED inbox row older than ``older_than_s``; each applier is idempotent (it locks the
    row and re-checks its status), so a row another process is applying right now is not applied twice.
    Returns how many were applied; a row whose applier fails is logged and left for the next run."""
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
    applied = 0
    for row in rows:
        try:
            appliers[row.source](row.id)
            applied += 1
        except UNAVAILABLE:
            raise  # the database is away: the next run carries on
        except Exception:  # one message that cannot be applied must not hold back the ones after it
            log.exception("process-inbox: stored message %d (%s) could not be applied; tried again next run",
                          row.id, row.source)
    if rows:
        log.info("process-inbox applied %d of %d stored message(s)", applied, len(rows))
    return applied
