"""The Notifications screen: delivery status per message, failures first, refreshed from the live feed."""
from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from . import ScreenContext
from .charts import RecordsModel, records_table
from .live_screen import LiveScreen

COLUMNS = (("Id", lambda n: n["id"]), ("Status", lambda n: n["status"]), ("Channel", lambda n: n["channel"]),
           ("Kind", lambda n: n["kind"]), ("To", lambda n: n["recipient"]), ("Payment", lambda n: n["payment_id"]),
           ("Tries", lambda n: n["attempts"]), ("Created (UTC)", lambda n: (n["created_at"] or "")[:19]),
           ("Delivered (UTC)", lambda n: (n["delivered_at"] or "")[:19]),
           ("Failure", lambda n: n["failure_reason"] or n["provider_status"] or ""))
COLOURS = {"FAILED": "#fbd5d5", "DELIVERED": "#d7f5dd", "QUEUED": "#fff4ce", "SENDING": "#fff4ce"}
ORDERS = (("Failures first", "failures"), ("Newest first", "newest"))
PAGE = 200


class NotificationsView(LiveScreen):
    """The SMS (and other) outbox with its delivery status."""

    key = "notifications"
    title = "Notifications"
    feed_types = frozenset({"notification"})
    error_context = "Loading notifications"

    def __init__(self, ctx: ScreenContext, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self.model = RecordsModel(COLUMNS, lambda n: COLOURS.get(n["status"]), self)
        self.table = records_table(self.model, (50, 85, 65, 120, 120, 65, 45, 140, 140))
        self.order_combo, self.channel_combo = QComboBox(), QComboBox()
        for text, value in ORDERS:
            self.order_combo.addItem(text, value)
        for text, value in (("SMS", "sms"), ("Any channel", ""), ("Webhooks", "webhook"), ("E-mail", "email")):
            self.channel_combo.addItem(text, value)
        self.order_combo.currentIndexChanged.connect(self.refresh)
        self.channel_combo.currentIndexChanged.connect(self.refresh)
        self.refresh_button, self.count_label = QPushButton("Refresh (F5)"), QLabel("")
        self.refresh_button.clicked.connect(self.refresh)
        self._build_layout()

    def _build_layout(self) -> None:
        row = QHBoxLayout()
        for widget in (QLabel("Show"), self.channel_combo, self.order_combo, self.refresh_button):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(self.count_label)
        column = QVBoxLayout(self)
        column.addLayout(row)
        column.addWidget(self.table, 1)

    def loader(self):
        """A page of the outbox in the chosen order."""
        client, order, channel = self.ctx.client, self.order_combo.currentData(), self.channel_combo.currentData()
        return lambda: client.notifications(channel=channel or None, order=order, limit=PAGE)

    def show_data(self, page) -> None:
        self.model.set_rows(page.items)
        failed = sum(1 for n in page.items if n["status"] == "FAILED")
        more = " (more not shown)" if page.next_cursor else ""
        self.count_label.setText(f"{len(page.items)} messages, {failed} failed{more}")
