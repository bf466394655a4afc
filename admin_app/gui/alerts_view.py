"""The Alerts panel: unacknowledged alerts first, an unread count for the main window, acknowledge (operator+),
and a double-click that opens the payment an alert is about."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from admin_app.core.models import role_at_least

from . import ScreenContext
from .charts import RecordsModel, records_table
from .live_screen import LiveScreen

COLUMNS = (("", lambda a: "" if a["acknowledged"] else "●"), ("When (UTC)", lambda a: (a["created_at"] or "")[:19]),
           ("Kind", lambda a: a["kind"]), ("Payment", lambda a: a["payment_id"] or ""),
           ("Message", lambda a: a["message"]))
PAGE = 200


def open_payment_in_window(widget: QWidget, payment_id: int) -> None:
    """Switch the main window to Payments and open one payment there (loaded in a worker)."""
    window = widget.window()
    payments = next((s for s in getattr(window, "screens", []) if s.key == "payments"), None)
    if payments is None:
        return
    window.show_screen(window.screens.index(payments))
    client = payments.ctx.client
    payments.ctx.run(lambda: client.payment(payment_id).payment, payments.open_payment,
                     lambda exc: payments.ctx.error(exc, f"Opening payment {payment_id}"), owner=payments)


class AlertsView(LiveScreen):
    """Alerts, newest unacknowledged first; Enter or double-click opens the payment, A acknowledges."""

    key = "alerts"
    title = "Alerts"
    feed_types = frozenset({"alert"})
    reload_when_hidden = True  # the main window shows the unread count on every screen
    error_context = "Loading alerts"
    unread_changed = Signal(int)

    def __init__(self, ctx: ScreenContext, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self.unread = 0
        self.open_payment = lambda payment_id: open_payment_in_window(self, payment_id)
        self._build_table()
        self._build_buttons()
        self._build_layout()
        QTimer.singleShot(0, self.refresh)  # the unread count is wanted before the panel is first shown

    def _build_table(self) -> None:
        colour = lambda a: None if a["acknowledged"] else "#fff1c2"  # noqa: E731
        self.model = RecordsModel(COLUMNS, colour, self)
        self.table = records_table(self.model, (24, 140, 150, 70))
        self.table.doubleClicked.connect(self.open_index)
        self.table.selectionModel().currentRowChanged.connect(self._update_buttons)
        for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            shortcut = QShortcut(QKeySequence(key), self.table, context=Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(lambda: self.open_index(self.table.currentIndex()))

    def _build_buttons(self) -> None:
        self.ack_button = QPushButton("&Acknowledge")
        self.open_button = QPushButton("&Open payment")
        self.ack_button.clicked.connect(self.acknowledge)
        self.open_button.clicked.connect(lambda: self.open_index(self.table.currentIndex()))
        self.count_label = QLabel("")
        self._update_buttons()

    def _build_layout(self) -> None:
        row = QHBoxLayout()
        row.addWidget(self.count_label, 1)
        row.addWidget(self.open_button)
        row.addWidget(self.ack_button)
        column = QVBoxLayout(self)
        column.addWidget(self.table, 1)
        column.addLayout(row)
        QWidget.setTabOrder(self.table, self.open_button)
        QWidget.setTabOrder(self.open_button, self.ack_button)

    # --- loading --------------------------------------------------------------------------------------------

    def loader(self):
        """The first page of alerts (unacknowledged come first)."""
        client = self.ctx.client
        return lambda: client.alerts(limit=PAGE)

    def show_data(self, page) -> None:
        self.model.set_rows(page.items)
        self.unread = sum(1 for a in page.items if not a["acknowledged"])
        more = "+" if page.next_cursor and self.unread == len(page.items) else ""
        self.count_label.setText(f"{self.unread}{more} unacknowledged of {len(page.items)} shown")
        self._update_buttons()
        self.unread_changed.emit(self.unread)

    # --- actions --------------------------------------------------------------------------------------------

    def current(self) -> dict | None:
        return self.model.row(self.table.currentIndex().row())

    def _update_buttons(self, *_args) -> None:
        alert = self.current()
        may_ack = role_at_least(self.ctx.role, "operator")
        self.ack_button.setEnabled(bool(may_ack and alert and not alert["acknowledged"]))
        self.ack_button.setToolTip("" if may_ack else "Acknowledging needs the operator role.")
        self.open_button.setEnabled(bool(alert and alert["payment_id"]))

    def open_index(self, index: QModelIndex) -> None:
        alert = self.model.row(index.row()) if index.isValid() else None
        if alert and alert["payment_id"]:
            self.open_payment(int(alert["payment_id"]))

    def acknowledge(self) -> None:
        """Mark the selected alert as seen, then reload the list and the count."""
        alert, client = self.current(), self.ctx.client
        if alert is None or alert["acknowledged"]:
            return
        self.ack_button.setEnabled(False)
        self.ctx.run(lambda: client.ack_alert(alert["id"]), lambda _a: self.refresh(),
                     lambda exc: self.ctx.error(exc, "Acknowledging the alert"), owner=self)
