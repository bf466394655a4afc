"""The outbox's lanes (issue 15): SMS on one thread, merchant webhooks on a small pool of their own.

A merchant endpoint is slow or down far more often than Africa's Talking, and a receipt SMS must never
wait behind it: each lane claims only its own channel, so SMS rows are claimed and sent while webhook
rows are in flight. Webhook senders claim one row at a time (a row never waits in a claimed batch behind
a slow one), each attempt has a total deadline (gateway/providers/webhooks.py), and at most ``per_host``
attempts go to one host at once in this process: a row for a saturated host is handed back to the queue
unsent (its attempt not counted) and looked at again after ``HOST_BUSY_S``.

E-mail (issue 16) has a lane of its own too, one thread: an SMTP server that is slow to greet or to take
DATA holds only other e-mails, never a receipt SMS.
"""
from __future__ import annotations

import threading
from urllib.parse import urlsplit

SMS_LANE, WEBHOOK_LANE, EMAIL_LANE = "sms", "webhook", "email"
HOST_BUSY_S = 1.0


def lane_filter(model, lane: str | None):
    """The WHERE part that keeps a claim to its lane; None claims every channel (a one-off pass)."""
    if lane == WEBHOOK_LANE:
        return model.channel == "webhook"
    if lane == EMAIL_LANE:
        return model.channel == "email"
    if lane == SMS_LANE:
        return model.channel.not_in(("webhook", "email"))
    return True


def host_of(url: str) -> str:
    """The host:port a webhook URL goes to (the per-host cap's key)."""
    try:
        parts = urlsplit(url)
        return f"{(parts.hostname or '?').lower()}:{parts.port or ''}"
    except ValueError:
        return "?"


class HostGate:
    """At most ``per_host`` attempts in flight to one host at once, across this process's senders."""

    def __init__(self, per_host: int):
        self.per_host = per_host
        self._busy: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, host: str) -> bool:
        """Take a place for host; False (take nothing) when it already has per_host in flight."""
        with self._lock:
            if self._busy.get(host, 0) >= self.per_host:
                return False
            self._busy[host] = self._busy.get(host, 0) + 1
            return True

    def leave(self, host: str) -> None:
        with self._lock:
            left = self._busy.get(host, 1) - 1
            if left:
                self._busy[host] = left
            else:
                self._busy.pop(host, None)

    def in_flight(self, host: str) -> int:
        with self._lock:
            return self._busy.get(host, 0)
