"""The Notifications screen: delivery status per message, failures first, refreshed from the live feed."""
from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from admin_app.core.words import NOTIFICATION_KINDS, delivery_words, eat, failure_words, kind_words

from . import ScreenContext
from .charts import RecordsModel, records_table
from .live_screen import LiveScreen

COLUMNS = (("Status", delivery_words), ("Channel", lambda n: {"sms": "SMS", "webhook": "Webhook"}.get(
               n["channel"], n["channel"])),
           ("Kind", lambda n: kind_words(n["kind"], NOTIFICATION_KINDS)), ("To", lambda n: n["recipient"]),
           ("Payment", lambda n: n.get("payment_reference") or ""), ("Created (EAT)", lambda n: eat(n["created_at"])),
           ("Delivered (EAT)", lambda n: eat(n["delivered_at"])), ("Failure", failure_words),
           ("Provider says", lambda n: n["provider_status"] or ""), ("Message", lambda n: n.get("body") or ""))
STATUSES = (("Any status", ""), ("Failed", "FAILED"), ("Waiting or retrying", "QUEUED"), ("Sent", "SENT"),
            ("Delivered", "DELIVERED"), ("Not sent (opted out)", "SUPPRESSED"))
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
        self.table = records_table(self.model, (150, 65, 130, 120, 95, 190, 190, 140, 90))
        self.order_combo, self.channel_combo, self.status_combo = QComboBox(), QComboBox(), QComboBox()
        for text, value in ORDERS:
            self.order_combo.addItem(text, value)
        for text, value in (("SMS", "sms"), ("Any channel", ""), ("Webhooks", "webhook")):
            self.channel_combo.addItem(text, value)
        for text, value in STATUSES:
            self.status_combo.addItem(text, value)
        for combo in (self.order_combo, self.channel_combo, self.status_combo):
            combo.currentIndexChanged.connect(self.refresh)
        self.refresh_button, self.count_label = QPushButton("Refresh (F5)"), QLabel("")
        self.refresh_button.clicked.connect(self.refresh)
        self._build_layout()

    def _build_layout(self) -> None:
        row = QHBoxLayout()
        for widget in (QLabel("Show"), self.channel_combo, self.status_combo, self.order_combo, self.refresh_button):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(self.count_label)
        column = QVBoxLayout(self)
        column.addLayout(row)
        column.addWidget(self.table, 1)

    def loader(self):
        """A page of the outbox in the chosen order."""
        client, order, channel = self.ctx.client, self.order_combo.currentData(), self.channel_combo.currentData()
        status = self.status_combo.currentData() or None
        return lambda: client.notifications(channel=channel or None, status=status, order=order, limit=PAGE)

    def show_data(self, page) -> None:
        self.model.set_rows(page.items)
        failed = sum(1 for n in page.items if n["status"] == "FAILED")
        more = " (more not shown)" if page.next_cursor else ""
        self.count_label.setText(f"{len(page.items):,} message{'s' * (len(page.items) != 1)}, {failed:,} failed{more}")
