"""The Dashboard: today's and a chosen period's numbers, failures by M-Pesa result code, open alerts and
hourly charts, refreshed from the live feed so a change shows within two seconds."""
from __future__ import annotations

from datetime import datetime, timezone

from PySide6.QtCore import QDate
from PySide6.QtWidgets import (
    QDateEdit,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from admin_app.core.dashboard_data import (
    DashboardData,
    by_hour_of_day,
    load_dashboard,
    success_by_hour,
    today_nairobi,
)
from admin_app.core.words import kind_words
from shared.timeutil import NAIROBI

from . import ScreenContext
from .charts import RecordsModel, chart_view, records_table, show_bars, show_line
from .live_screen import LiveScreen

TILES = (("today_payments", "Payments today"), ("today_amount", "Collected today"), ("today_success", "Success today"),
         ("pending", "Pending now"), ("stuck", "Stuck now"), ("alerts", "Open alerts"),
         ("period_payments", "Payments in period"), ("period_amount", "Collected in period"),
         ("period_success", "Success in period"), ("lag", "Callback lag p50 / p95"), ("sms", "SMS delivered"))
STATUS_COLUMNS = tuple((header, lambda row, i=i: row[i]) for i, header in enumerate(
    ("Status", "Today", "Amount today", "Period", "Amount in period")))
FAILURE_COLUMNS = (("Result code", lambda row: row[0]), ("Count", lambda row: row[1]),
                   ("Meaning", lambda row: row[2]))
ALERT_COLUMNS = (("Kind", lambda a: kind_words(a["kind"])), ("Message", lambda a: a["message"]))


class Tile(QFrame):
    """A caption over a big number."""

    def __init__(self, caption: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("Tile { background: #f7f9fc; border: 1px solid #d5dbe5; border-radius: 4px; }")
        self.caption, self.value = QLabel(caption), QLabel("…")
        self.caption.setStyleSheet("color: #555; font-size: 9pt;")
        self.value.setStyleSheet("font-size: 15pt; font-weight: 600;")
        column = QVBoxLayout(self)
        column.setContentsMargins(8, 4, 8, 4)
        column.addWidget(self.caption)
        column.addWidget(self.value)


class Dashboard(LiveScreen):
    """The numbers of the day and of a period; F5 reloads, the live feed reloads on every change."""

    key = "dashboard"
    title = "Dashboard"
    feed_types = None
    error_context = "Loading the dashboard"

    def __init__(self, ctx: ScreenContext, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self.data: DashboardData | None = None
        self._build_controls()
        self._build_tiles()
        self._build_tables()
        self._build_charts()
        self._build_layout()

    # --- widgets --------------------------------------------------------------------------------------------

    def _build_controls(self) -> None:
        today = QDate(today_nairobi())  # the API's days are Nairobi's, whatever the workstation's zone
        self.from_date, self.to_date = QDateEdit(today.addDays(-6)), QDateEdit(today)
        for edit in (self.from_date, self.to_date):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
        self.apply_button, self.today_button = QPushButton("&Show period"), QPushButton("Last &7 days")
        self.apply_button.clicked.connect(self.refresh)
        self.today_button.clicked.connect(self.last_week)
        self.updated_label = QLabel("")

    def _build_tiles(self) -> None:
        self.tiles = {key: Tile(caption) for key, caption in TILES}

    def _build_tables(self) -> None:
        self.status_model = RecordsModel(STATUS_COLUMNS, parent=self)
        self.failure_model = RecordsModel(FAILURE_COLUMNS, parent=self)
        self.alert_model = RecordsModel(ALERT_COLUMNS, parent=self)
        self.status_table = records_table(self.status_model, (95, 60, 110, 60))  # "25,000" and "KES 1,234,500" fit
        self.failure_table = records_table(self.failure_model, (80, 55))
        self.alert_table = records_table(self.alert_model, (110,))

    def _build_charts(self) -> None:
        self.hourly_chart = chart_view("Payments per hour (Nairobi)")
        self.success_chart = chart_view("Completed share per hour")

    def _build_layout(self) -> None:
        controls = QHBoxLayout()
        for widget in (QLabel("Period from"), self.from_date, QLabel("to"), self.to_date, self.apply_button,
                       self.today_button):
            controls.addWidget(widget)
        controls.addStretch(1)
        controls.addWidget(self.updated_label)
        grid = QGridLayout()
        for n, (key, _) in enumerate(TILES):
            grid.addWidget(self.tiles[key], n // 6, n % 6)
        tables = QHBoxLayout()
        for title, table, stretch in (("Payments by status", self.status_table, 5),
                                      ("Failures by M-Pesa result code (period)", self.failure_table, 4),
                                      ("Open alerts", self.alert_table, 4)):
            tables.addWidget(_boxed(title, table), stretch)
        charts = QHBoxLayout()
        charts.addWidget(self.hourly_chart)
        charts.addWidget(self.success_chart)
        column = QVBoxLayout(self)
        column.addLayout(controls)
        column.addLayout(grid)
        column.addLayout(tables, 3)
        column.addLayout(charts, 4)
        for first, second in ((self.from_date, self.to_date), (self.to_date, self.apply_button),
                              (self.apply_button, self.today_button), (self.today_button, self.status_table),
                              (self.status_table, self.failure_table), (self.failure_table, self.alert_table)):
            QWidget.setTabOrder(first, second)

    # --- loading --------------------------------------------------------------------------------------------

    def period(self):
        """The chosen (from, to) dates, in order."""
        a, b = self.from_date.date().toPython(), self.to_date.date().toPython()
        return (a, b) if a <= b else (b, a)

    def last_week(self) -> None:
        today = QDate(today_nairobi())
        self.from_date.setDate(today.addDays(-6))
        self.to_date.setDate(today)
        self.refresh()

    def loader(self):
        """Today, the period and the open alerts in one worker."""
        client, (date_from, date_to) = self.ctx.client, self.period()
        return lambda: load_dashboard(client, date_from, date_to)

    # --- showing --------------------------------------------------------------------------------------------

    def show_data(self, data: DashboardData) -> None:
        self.data = data
        self._show(data)
        now = datetime.now(timezone.utc).astimezone(NAIROBI)  # Nairobi time, as the charts: not the workstation's
        self.updated_label.setText(f"Updated {now:%H:%M:%S} EAT — live")

    def _show(self, data: DashboardData) -> None:
        today, period = data.today.tiles(), data.period.tiles()
        values = {"today_payments": today["payments"], "today_amount": today["amount"],
                  "today_success": today["success"], "pending": today["pending"], "stuck": today["stuck"],
                  "alerts": f"{data.unread_alerts:,}", "period_payments": period["payments"],
                  "period_amount": period["amount"], "period_success": period["success"],
                  "lag": period["lag"], "sms": period["sms"]}
        for key, text in values.items():
            self.tiles[key].value.setText(text)
        self.status_model.set_rows(data.status_table())
        self.failure_model.set_rows(data.period.failures)
        self.alert_model.set_rows(data.alerts)
        hours = by_hour_of_day(data.period.hourly)
        labels = [f"{h:02d}" for h, _, _ in hours]
        show_bars(self.hourly_chart, labels, [count for _, count, _ in hours])
        show_line(self.success_chart, labels, [rate for _, rate in success_by_hour(data.period.hourly)])


def _boxed(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    QVBoxLayout(box).addWidget(widget)
    box.layout().setContentsMargins(4, 4, 4, 4)
    return box

