"""Writing to the outbox. Called inside the caller's transaction, so a change and its messages commit together."""
from __future__ import annotations

import threading
from contextvars import ContextVar

from shared.db import prepared
from shared.models import Notification

from .preferences import opted_out


class Wakeups:
    """Which threads queued a message since their app last woke its dispatcher. One per app (held on its
    Services), bound to each request, task and job with bind_wakeups, so one app's queued message never wakes
    another app's dispatcher. Per thread: a request's flag is taken after its own transaction commits."""

    def __init__(self) -> None:
        self._local = threading.local()

    def mark(self) -> None:
        self._local.pending = True

    def take(self) -> bool:
        """True once if this thread queued something since the last call (then the dispatcher is woken)."""
        pending = getattr(self._local, "pending", False)
        self._local.pending = False
        return pending


# Which app's Wakeups the running code marks: a context variable (per thread, per request), like the
# payment hooks' binding. Unbound (a test's own thread), a message is still queued; the dispatcher's poll
# sends it.
_bound: ContextVar[Wakeups] = ContextVar("lipa_outbox_wakeups")


def bind_wakeups(wakeups: Wakeups) -> None:
    """Make ``wakeups`` the ones enqueue() marks in this context (the current thread or request)."""
    _bound.set(wakeups)


UNREAD = object()  # enqueue(preference=…) not given: the outbox reads the phone's opt-out itself


def enqueue(*, channel: str, kind: str, recipient: str, body: str, payment=None, request=None,
            language: str = "en", dedupe_key: str | None = None, respect_opt_out: bool = True,
            preference=UNREAD) -> Notification:
    """Queue one message; the same dedupe key never queues twice. A phone that sent STOP gets a
    SUPPRESSED row (kept, for the timeline) unless this is a direct reply to its own command. ``preference``
    is the phone's preferences row (or None) when the caller has just read it (the notifier, for the
    language), so it is not read twice."""
    status = "QUEUED"
    if channel == "sms" and respect_opt_out and _opted_out(recipient, preference):
        status = "SUPPRESSED"
    values = dict(channel=channel, kind=kind, recipient=recipient, body=body, payment=payment, request=request,
                  language=language, dedupe_key=dedupe_key, status=status)
    if dedupe_key:
        row = prepared.create_new(Notification, Notification.dedupe_key, **values)
        if row is None:  # queued before (a re-applied change): that row stands
            return Notification.get(Notification.dedupe_key == dedupe_key)
    else:
        row = prepared.create(Notification, **values)
    wakeups = _bound.get(None)
    if status == "QUEUED" and wakeups is not None:
        wakeups.mark()
    return row


def _opted_out(recipient: str, preference) -> bool:
    if preference is UNREAD:
        return opted_out(recipient)
    return preference is not None and not preference.notifications
