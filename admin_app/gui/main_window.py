"""The shell: navigation over the registered screens, the message bar, the connection banner and shortcuts.

To add a screen, write a module with a ``Screen`` subclass (see ``admin_app.gui``) and add one line to
``SCREENS``; the navigation, shortcuts and ``--screenshot`` pick it up.
"""
from __future__ import annotations

import importlib

from PySide6.QtCore import Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from admin_app.core.client import ApiClient, ApiError, ConnectionLost, not_done_text
from admin_app.core.models import role_at_least

from . import Screen, ScreenContext
from .live_feed import feed_for, stop_feed

# The registry: "module:Class", in navigation order.
SCREENS: list[str] = [
    "admin_app.gui.payments_view:PaymentsView",
    "admin_app.gui.dashboard:Dashboard",
    "admin_app.gui.alerts_view:AlertsView",
    "admin_app.gui.notifications_view:NotificationsView",
    "admin_app.gui.jobs_view:JobsView",
    "admin_app.gui.reconciliation_view:ReconciliationView",
]
RETRY_DELAYS_MS = (1000, 2000, 4000, 8000, 15000, 30000)
INFO_SHOWN_MS = 15000
STYLES = {"info": "background:#e7f1ff; color:#123d8a;", "error": "background:#fde2e2; color:#8a1111;",
          "offline": "background:#fff1c2; color:#5c4400;"}


def load_screen_class(path: str) -> type[Screen]:
    """``"package.module:Class"`` to the class, imported only when the shell starts."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


class Banner(QFrame):
    """A one-line coloured strip with a button; hidden until there is something to say."""

    def __init__(self, button_text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.button = QPushButton(button_text)
        self.level = ""
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 4, 6, 4)
        row.addWidget(self.label, 1)
        row.addWidget(self.button)
        self.hide()

    def say(self, text: str, level: str) -> None:
        self.level = level
        self.setStyleSheet(f"Banner {{ {STYLES[level]} }} QLabel {{ {STYLES[level]} }}")
        self.label.setText(text)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class MainWindow(QMainWindow):
    """One window; screens stay usable while the connection banner retries in the background."""

    session_ended = Signal(str)  # a 401: the token expired, went idle or was revoked (the launcher asks again)

    def __init__(self, client: ApiClient, *, pool: QThreadPool | None = None, screens: list[str] | None = None):
        super().__init__()
        self.client, self.pool = client, pool
        self.setWindowTitle(f"Lipa Admin — {client.username} ({client.role})")
        self.resize(1280, 720)
        self.ctx = ScreenContext(client, self.info, self.error, pool)
        self.screens: list[Screen] = []
        self._shown: set[int] = set()
        self._retry_attempt, self._pinging = 0, False
        self._session_over = False
        self._build_banners()
        self._build_screens(SCREENS if screens is None else screens)
        self._build_layout()
        self._build_shortcuts()
        self.statusBar().showMessage(f"Signed in as {client.username} ({client.role}) at {client.base_url}")
        self.alerts_label = QLabel("")
        self.statusBar().addPermanentWidget(self.alerts_label)
        self.feed_label = QLabel("")  # "Live updates paused …" while the gateway asks the feed to wait
        self.statusBar().addPermanentWidget(self.feed_label)
        self._feed_timer = QTimer(self, singleShot=True, timeout=lambda: self.feed_label.setText(""))
        feed_for(client).throttled.connect(self._feed_throttled)
        for row, screen in enumerate(self.screens):
            if hasattr(screen, "unread_changed"):
                screen.unread_changed.connect(lambda n, row=row: self._show_unread(row, n))

    # --- widgets --------------------------------------------------------------------------------------------

    def _build_banners(self) -> None:
        self.message_bar = Banner("✕")
        self.message_bar.button.setFlat(True)
        self.message_bar.button.clicked.connect(self.message_bar.hide)
        self._info_timer = QTimer(self, singleShot=True, interval=INFO_SHOWN_MS)
        self._info_timer.timeout.connect(self._hide_info)
        self.connection_banner = Banner("Retry now")
        self.connection_banner.button.clicked.connect(self.retry_connection)
        self._retry_timer = QTimer(self, singleShot=True)
        self._retry_timer.timeout.connect(self.retry_connection)

    def _build_screens(self, paths: list[str]) -> None:
        self.nav = QListWidget()
        self.nav.setFixedWidth(150)
        self.nav.setStyleSheet("QListWidget { font-size: 11pt; } QListWidget::item { padding: 8px; }")
        self.stack = QStackedWidget()
        for path in paths:
            cls = load_screen_class(path)
            if not role_at_least(self.client.role, cls.min_role):
                continue
            screen = cls(self.ctx)
            self.screens.append(screen)
            self.stack.addWidget(screen)
            self.nav.addItem(cls.title)
        self.nav.currentRowChanged.connect(self.show_screen)

    def _build_layout(self) -> None:
        body = QHBoxLayout()
        body.addWidget(self.nav)
        body.addWidget(self.stack, 1)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(6, 6, 6, 0)
        column.addWidget(self.connection_banner)
        column.addLayout(body, 1)
        # Below the screens, its room kept while hidden: a message appearing never moves what is under the
        # mouse (it used to push every screen down ~36 px, so a click landed beside the money buttons).
        policy = self.message_bar.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.message_bar.setSizePolicy(policy)
        column.addWidget(self.message_bar)
        self.setCentralWidget(central)

    def _build_shortcuts(self) -> None:
        """Ctrl+F search, F5 refresh, Ctrl+R re-query, Ctrl+P print: each goes to the visible screen."""
        for keys, hook in (("Ctrl+F", "focus_search"), ("F5", "refresh"), ("Ctrl+R", "requery"),
                           ("Ctrl+P", "print_receipt")):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.activated.connect(lambda hook=hook: self._on_current(hook))

    # --- screens --------------------------------------------------------------------------------------------

    def current_screen(self) -> Screen | None:
        widget = self.stack.currentWidget()
        return widget if isinstance(widget, Screen) else None

    def screen(self, key: str) -> Screen:
        return next(s for s in self.screens if s.key == key)

    def show_screen(self, index: int) -> None:
        """Switch screens; a screen loads its data the first time it is shown."""
        if not 0 <= index < len(self.screens):
            return
        if self.nav.currentRow() != index:
            self.nav.setCurrentRow(index)  # comes back here through currentRowChanged
            return
        self.stack.setCurrentIndex(index)
        if index not in self._shown:
            self._shown.add(index)
            self.screens[index].refresh()

    def start(self) -> None:
        """Show the window on the first screen and load it."""
        self.show()
        if self.screens:
            self.show_screen(0)

    def _show_unread(self, row: int, count: int) -> None:
        """The unacknowledged alert count in the navigation and the status bar."""
        self.nav.item(row).setText(f"Alerts ({count:,})" if count else "Alerts")
        self.alerts_label.setText(f"⚠ {count:,} open alert{'s' * (count != 1)}" if count else "")

    def closeEvent(self, event) -> None:
        stop_feed(self.client)
        super().closeEvent(event)

    def _on_current(self, hook: str) -> None:
        screen = self.current_screen()
        if screen is not None:
            getattr(screen, hook)()

    # --- messages -------------------------------------------------------------------------------------------

    def info(self, text: str) -> None:
        """An outcome worth seeing, which goes away by itself."""
        self.message_bar.say(text, "info")
        self._info_timer.start()

    def error(self, exc: BaseException, doing: str, action: bool = False) -> None:
        """A failure: lost connections go to the banner (and are retried), the rest stay in the message bar; an
        action that met a lost connection also stays there as not done (it never vanishes into the banner)."""
        if isinstance(exc, ConnectionLost):
            self.connection_lost(exc)
            if action:
                self._info_timer.stop()
                self.message_bar.say(not_done_text(exc, doing), "error")
            return
        if isinstance(exc, ApiError) and exc.status == 401:
            text = f"{doing} failed: your session has expired or was revoked; sign in again."
            if not self._session_over:  # once: the launcher offers the sign-in window
                self._session_over = True
                self.session_ended.emit(text)
        elif isinstance(exc, ApiError):
            text = f"{doing} failed: {exc.message} ({exc.code})"
        else:
            text = f"{doing} failed: {type(exc).__name__}: {exc}"
        self._info_timer.stop()
        self.message_bar.say(text, "error")

    def _feed_throttled(self, seconds: float) -> None:
        """The gateway asked the live feed to slow down: say so while it waits (the message goes by itself)."""
        self.feed_label.setText(f"Live updates paused: the gateway asked to wait; resuming in {seconds:.0f} s.")
        self._feed_timer.start(int(seconds * 1000) + 500)

    def _hide_info(self) -> None:
        if self.message_bar.level == "info":
            self.message_bar.hide()

    # --- connection -----------------------------------------------------------------------------------------

    def connection_lost(self, exc: BaseException) -> None:
        """Show the banner and retry with growing delays; everything else keeps working."""
        if self.connection_banner.isVisible() and (self._retry_timer.isActive() or self._pinging):
            return
        self._schedule_retry(str(exc))

    def _schedule_retry(self, why: str) -> None:
        delay = RETRY_DELAYS_MS[min(self._retry_attempt, len(RETRY_DELAYS_MS) - 1)]
        self._retry_attempt += 1
        self.connection_banner.say(f"Connection to the gateway lost — {why} Retrying in {delay // 1000} s.",
                                   "offline")
        self._retry_timer.start(delay)

    def retry_connection(self) -> None:
        """Ping the gateway in a worker (the timer, or the Retry now button)."""
        if self._pinging:
            return
        self._retry_timer.stop()
        self._pinging = True
        self.connection_banner.label.setText("Connection to the gateway lost — trying again now…")
        self.ctx.run(self.client.ping, self._reconnected, self._still_down, owner=self)

    def _reconnected(self, _health) -> None:
        self._pinging, self._retry_attempt = False, 0
        self.connection_banner.hide()
        self.info("Connection to the gateway restored.")
        screen = self.current_screen()
        if screen is not None:
            screen.refresh()

    def _still_down(self, exc: BaseException) -> None:
        self._pinging = False
        self._schedule_retry(str(exc))
