"""The live feed: one long-poll loop per signed-in client, off the GUI thread, announcing changes by signal.

The loop runs on its own daemon thread (a long-poll would hold a pool thread for 20 s at a time); it only
calls the Qt-free client and emits signals, which reach the screens' slots queued on the GUI thread.
"""
from __future__ import annotations

import threading
import weakref

import shiboken6
from PySide6.QtCore import QObject, Signal

from admin_app.core.client import ApiClient, ApiError

WAIT_S = 20.0
RETRY_S = (1, 2, 4, 8, 15, 30)


class LiveFeed(QObject):
    """Long-polls ``events(after, wait)`` and emits ``changed(items)`` for every non-empty page."""

    changed = Signal(list)
    ready = Signal()  # the starting cursor is known: changes from now on will be announced
    failed = Signal(object)
    throttled = Signal(float)  # the gateway answered 429: the feed waits this many seconds (its Retry-After)

    def __init__(self, client: ApiClient, wait: float = WAIT_S, parent: QObject | None = None):
        super().__init__(parent)
        self.client, self.wait = client, wait
        self.cursor: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        """Start the loop (once; again after stop())."""
        if self.running:
            return
        self._stop = threading.Event()
        self.cursor = None
        self._thread = threading.Thread(target=self._loop, args=(self._stop,), name="lipa-live-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop announcing at once; a long-poll in flight ends on its own and is dropped."""
        self._stop.set()

    def _emit(self, signal_name: str, stop: threading.Event, *args) -> None:
        if not stop.is_set() and shiboken6.isValid(self):
            getattr(self, signal_name).emit(*args)

    def _loop(self, stop: threading.Event) -> None:
        """Take the current end of the feed, then wait for what comes after it, page by page."""
        attempt, cursor = 0, None
        while not stop.is_set():
            try:
                page = self.client.events(cursor or "now", wait=self.wait if cursor else 0)
            except Exception as exc:  # noqa: BLE001 - reported by signal, then retried with a growing delay
                backoff = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                if isinstance(exc, ApiError) and exc.status == 429:  # told to wait: that long, never sooner
                    backoff = exc.retry_after if exc.retry_after is not None else backoff
                    self._emit("throttled", stop, float(backoff))
                else:
                    self._emit("failed", stop, exc)
                stop.wait(backoff)
                attempt += 1
                continue
            attempt, first = 0, cursor is None
            cursor = page.next_cursor or cursor
            if first:
                self.cursor = cursor
                self._emit("ready", stop)
            if page.items:
                self._emit("changed", stop, list(page.items))


_feeds: weakref.WeakKeyDictionary[ApiClient, LiveFeed] = weakref.WeakKeyDictionary()


def feed_for(client: ApiClient) -> LiveFeed:
    """The one feed of this client, started on first use, so every screen shares one long-poll."""
    feed = _feeds.get(client)
    if feed is None or not shiboken6.isValid(feed):
        feed = _feeds[client] = LiveFeed(client, wait=WAIT_S)
    if not feed.running:
        feed.start()
    return feed


def stop_feed(client: ApiClient) -> None:
    """Stop the client's feed (the main window closes)."""
    feed = _feeds.pop(client, None)
    if feed is not None and shiboken6.isValid(feed):
        feed.stop()
