"""The Alerts panel: unacknowledged alerts first, an unread count for the main window, acknowledge (operator+),
and a double-click that opens the payment an alert is about."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractItemView, QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from admin_app.core.models import role_at_least
from admin_app.core.words import ALERT_KINDS, eat, kind_words

from . import ScreenContext
from .charts import RecordsModel, records_table
from .live_screen import LiveScreen

COLUMNS = (("", lambda a: "" if a["acknowledged"] else "●"), ("When (EAT)", lambda a: eat(a["created_at"])),
           ("Kind", lambda a: kind_words(a["kind"])),
           ("Payment", lambda a: a.get("payment_reference") or ("" if not a["payment_id"] else f"#{a['payment_id']}")),
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
        self.unread, self.total_unread = 0, None
        self.open_payment = lambda payment_id: open_payment_in_window(self, payment_id)
        self._build_table()
        self._build_buttons()
        self._build_layout()
        QTimer.singleShot(0, self.refresh)  # the unread count is wanted before the panel is first shown

    def _build_table(self) -> None:
        colour = lambda a: None if a["acknowledged"] else "#fff1c2"  # noqa: E731
        self.model = RecordsModel(COLUMNS, colour, self)
        self.table = records_table(self.model, (24, 160, 220, 100))
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)  # bulk acknowledge
        self.table.doubleClicked.connect(self.open_index)
        self.table.selectionModel().currentRowChanged.connect(self._update_buttons)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)  # several rows: bulk
        for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            shortcut = QShortcut(QKeySequence(key), self.table, context=Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(lambda: self.open_index(self.table.currentIndex()))

    def _build_buttons(self) -> None:
        self.ack_button = QPushButton("&Acknowledge selected")
        self.open_button = QPushButton("&Open payment")
        self.more_button = QPushButton("Load more")
        self.ack_button.clicked.connect(self.acknowledge)
        self.open_button.clicked.connect(lambda: self.open_index(self.table.currentIndex()))
        self.more_button.clicked.connect(self.load_more)
        self.kind_combo, self.shown_combo = QComboBox(), QComboBox()
        self.kind_combo.addItem("Every kind", "")
        for kind, words in sorted(ALERT_KINDS.items(), key=lambda item: item[1]):
            self.kind_combo.addItem(words, kind)
        for text, value in (("Unacknowledged first", None), ("Unacknowledged only", False),
                            ("Acknowledged only", True)):
            self.shown_combo.addItem(text, value)
        self.kind_combo.currentIndexChanged.connect(self.refresh)
        self.shown_combo.currentIndexChanged.connect(self.refresh)
        self.count_label = QLabel("")
        self.next_cursor: str | None = None
        self._update_buttons()

    def _build_layout(self) -> None:
        filters = QHBoxLayout()
        for widget in (QLabel("Show"), self.kind_combo, self.shown_combo):
            filters.addWidget(widget)
        filters.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.count_label, 1)
        for widget in (self.more_button, self.open_button, self.ack_button):
            row.addWidget(widget)
        column = QVBoxLayout(self)
        column.addLayout(filters)
        column.addWidget(self.table, 1)
        column.addLayout(row)
        QWidget.setTabOrder(self.table, self.open_button)
        QWidget.setTabOrder(self.open_button, self.ack_button)

    # --- loading --------------------------------------------------------------------------------------------

    def loader(self):
        """The first page of alerts with the filters chosen (unacknowledged come first)."""
        client, kind, shown = self.ctx.client, self.kind_combo.currentData() or None, self.shown_combo.currentData()
        return lambda: client.alerts(acknowledged=shown, kind=kind, limit=PAGE)

    def show_data(self, page) -> None:
        self.model.set_rows(page.items)
        self.next_cursor, self.total_unread = page.next_cursor, page.counts.get("unacknowledged")
        self._count()
        self._update_buttons()

    def _count(self) -> None:
        """The gateway's own count of unacknowledged alerts, whatever is loaded: the navigation, the status bar
        and the dashboard tile all show this one number."""
        loaded = sum(1 for a in self.model.rows if not a["acknowledged"])
        self.unread = loaded if self.total_unread is None else int(self.total_unread)
        self.count_label.setText(f"{self.unread:,} unacknowledged in all; {len(self.model.rows):,} shown")
        self.unread_changed.emit(self.unread)

    def load_more(self) -> None:
        """The next page at the end of the list (never every page at once: the read budget)."""
        if not self.next_cursor:
            return
        client, cursor = self.ctx.client, self.next_cursor
        kind, shown = self.kind_combo.currentData() or None, self.shown_combo.currentData()

        def more(page) -> None:
            self.model.append_rows(page.items)
            self.next_cursor = page.next_cursor
            self._count()
            self._update_buttons()

        self.ctx.run(lambda: client.alerts(acknowledged=shown, kind=kind, cursor=cursor, limit=PAGE), more,
                     lambda exc: self.ctx.error(exc, "Loading more alerts"), owner=self)

    # --- actions --------------------------------------------------------------------------------------------

    def current(self) -> dict | None:
        return self.model.row(self.table.currentIndex().row())

    def selected(self) -> list[dict]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [alert for alert in (self.model.row(r) for r in rows) if alert]

    def _update_buttons(self, *_args) -> None:
        alert, unread = self.current(), [a for a in self.selected() if not a["acknowledged"]]
        may_ack = role_at_least(self.ctx.role, "operator")
        self.ack_button.setEnabled(bool(may_ack and unread))
        self.ack_button.setText(f"&Acknowledge {len(unread)} selected" if len(unread) > 1 else "&Acknowledge")
        self.ack_button.setToolTip("" if may_ack else "Acknowledging needs the operator role.")
        self.open_button.setEnabled(bool(alert and alert["payment_id"]))
        self.open_button.setToolTip("" if alert and alert["payment_id"] else "This alert is about no one payment.")
        self.more_button.setVisible(bool(getattr(self, "next_cursor", None)))

    def open_index(self, index: QModelIndex) -> None:
        alert = self.model.row(index.row()) if index.isValid() else None
        if alert and alert["payment_id"]:
            self.open_payment(int(alert["payment_id"]))

    def acknowledge(self) -> None:
        """Mark the selected alerts as seen (one call for all of them), then reload the list and the count."""
        ids, client = [a["id"] for a in self.selected() if not a["acknowledged"]], self.ctx.client
        if not ids:
            return
        self.ack_button.setEnabled(False)
        self.ctx.run(lambda: client.ack_alerts(ids), self._acknowledged,
                     lambda exc: self.ctx.action_failed(exc, "Acknowledging alerts"), owner=self)

    def _acknowledged(self, answer: dict) -> None:
        self.ctx.info(f"{answer.get('acknowledged', 0)} alert(s) acknowledged.")
        self.refresh()
