"""``LiveScreen``: a screen that loads one thing in a worker and keeps it fresh from the live feed.

Dashboard, Alerts, Notifications and Jobs all follow the same rules, kept here once: a refresh asked for
while one is running is merged into a single reload right after it; a failure goes to the message bar;
``loaded`` follows every refresh, success or not; and a feed item of a kind the screen shows reloads it at
once when visible, or when it is next shown, but never more often than once per ``feed_interval_ms``
however busy the feed (the dashboard reads three routes a reload: a busy day must not spend the user's
read budget).
"""
from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

from . import Screen, ScreenContext
from .live_feed import feed_for


class LiveScreen(Screen):
    """Subclasses give ``loader()`` and ``show_data()``, and say which feed items concern them."""

    feed_types: frozenset[str] | None = frozenset()  # feed item types that reload it; None: every item
    reload_when_hidden = False  # True: reload on a feed item even while hidden (a count shown elsewhere)
    error_context = "Loading"  # the message bar's "<context> failed: …"
    feed_interval_ms = 1000  # feed-driven reloads at most this often

    def __init__(self, ctx: ScreenContext, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self._busy = self._again = self._stale = False
        self._last_start = 0.0
        self._later = QTimer(self, singleShot=True, timeout=self.refresh)
        if self.feed_types is None or self.feed_types:
            self.feed = feed_for(ctx.client)
            self.feed.changed.connect(self._on_feed)

    def loader(self) -> Callable[[], object]:
        """The blocking call to make in a worker; widgets are read here, on the GUI thread, never in it."""
        raise NotImplementedError

    def show_data(self, data) -> None:
        """Put what ``loader()``'s call returned on screen (GUI thread)."""
        raise NotImplementedError

    def refresh(self) -> None:
        """Reload in a worker; asked again meanwhile, it reloads once more right after."""
        if self._busy:
            self._again = True
            return
        self._busy, self._again, self._stale = True, False, False
        self._last_start = time.monotonic()
        self.ctx.run(self.loader(), self._on_data, self._on_error, self._on_finished, owner=self)

    def _on_data(self, data) -> None:
        self.last_error = None
        self.show_data(data)
        self.loaded.emit()

    def _on_error(self, exc: BaseException) -> None:
        self.last_error = exc
        self.ctx.error(exc, self.error_context)
        self.loaded.emit()

    def _on_finished(self) -> None:
        self._busy = False
        if self._again:
            self.refresh()

    def _on_feed(self, items: list) -> None:
        """Something this screen shows changed: reload now if shown (or it must be), else when next shown."""
        if self.feed_types is not None and not any(item.get("type") in self.feed_types for item in items):
            return
        if not (self.reload_when_hidden or self.isVisible()):
            self._stale = True
            return
        wait_ms = self.feed_interval_ms - (time.monotonic() - self._last_start) * 1000
        if wait_ms <= 0 and not self._later.isActive():
            self.refresh()
        elif not self._later.isActive():
            self._later.start(int(max(wait_ms, 0)))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.refresh()
