"""Alerts: what staff must see (the desktop app's Alerts screen). A row and a WARNING log line.

Why in notify and not beside the state machine: the dispatcher raises alerts too (a message given up), and
notify must not import payments (payments queue notifications, so that is the one direction)."""
from __future__ import annotations

import logging

from shared.models import Alert, Payment

log = logging.getLogger(__name__)


def raise_alert(kind: str, message: str, *, payment: Payment | None = None, inbox=None) -> Alert:
    """Something staff must see; logged at WARNING too."""
    log.warning("alert %s: %s", kind, message)
    return Alert.create(kind=kind, message=message[:255], payment=payment, inbox=inbox)
