"""The Payments screen: filters over the whole history, a table that loads pages as it scrolls, the detail
beside it, and a CSV export of everything the filters match."""
from __future__ import annotations

import threading

import shiboken6
from PySide6.QtCore import QDate, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressDialog,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from admin_app.core.dashboard_data import today_nairobi
from admin_app.core.export import ExportCancelled, export_payments
from admin_app.core.models import PRINT, REQUERY, STATUSES, Page, Payment, PaymentFilters

from . import Screen, ScreenContext
from .live_feed import feed_for
from .payment_detail import PaymentDetailPanel
from .payments_model import PaymentsTableModel

COLUMN_WIDTHS = (60, 140, 105, 120, 95, 110, 105, 115, 65, 40)  # status early: still visible beside the detail
LIVE_DETAIL_MS = 1000  # the open payment reloads at most once a second while the feed announces it
LIVE_LIST_MS = 10_000  # new payments: one first-page read at most every 10 s
FLAGGED_CHOICES = (("Flagged or not", None), ("Flagged only", True), ("Not flagged", False))


def choose_export_path(parent: QWidget) -> str:
    """The default: a save dialog; an empty string when cancelled."""
    path, _ = QFileDialog.getSaveFileName(parent, "Export payments", "payments.csv", "CSV files (*.csv)")
    return path


class PaymentsView(Screen):
    """Every payment, newest first; double-click or Enter opens one."""

    key = "payments"
    title = "Payments"
    page_size = 100
    export_page_size = 200  # payments per API page while exporting (progress moves a page at a time)
    exported = Signal(int)  # payments written by the last export
    export_progress = Signal(int)  # payments written so far (emitted from the export's worker thread, queued)
    export_cancelled = Signal()  # the export stopped on Cancel; nothing was written

    def __init__(self, ctx: ScreenContext, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self.filters = PaymentFilters()
        self.choose_export_path = lambda: choose_export_path(self)
        self._export_box: QProgressDialog | None = None  # the running export's progress window
        self.export_progress.connect(self._show_export_progress, Qt.ConnectionType.QueuedConnection)
        self._load_seq = 0
        self.model = PaymentsTableModel(self._fetch_page, self)
        self.model.fetch_failed.connect(lambda exc: self.ctx.error(exc, "Loading more payments"))
        self.model.page_loaded.connect(self._update_count)
        self.detail = PaymentDetailPanel(ctx)
        self.detail.payment_changed.connect(self.model.update_payment)
        self.detail.payment_created.connect(lambda _payment: self._load_first_page())
        self.detail.loaded.connect(self._run_pending_shortcut)
        self.detail.attempt_opened.connect(self._select)
        self._pending_shortcut: tuple[int, str] | None = None  # (payment id, action) waiting for its load
        self._follow_feed()
        self._build_filters()
        self._build_table()
        self._build_layout()

    # --- widgets --------------------------------------------------------------------------------------------

    def _build_filters(self) -> None:
        self.status_combo = QComboBox()
        self.status_combo.addItem("Any status", "")
        for status in STATUSES:
            self.status_combo.addItem(status.replace("_", " ").title(), status)
        self.flagged_combo = QComboBox()
        for text, value in FLAGGED_CHOICES:
            self.flagged_combo.addItem(text, value)
        self.phone_edit, self.account_edit, self.search_edit = QLineEdit(), QLineEdit(), QLineEdit()
        for edit, hint in ((self.phone_edit, "Phone 07…"), (self.account_edit, "Account"),
                           (self.search_edit, "Reference or M-Pesa receipt (Ctrl+F)")):
            edit.setPlaceholderText(hint)
            edit.setClearButtonEnabled(True)
            edit.returnPressed.connect(self.apply_filters)
        self.dates_check = QCheckBox("From")
        today = QDate(today_nairobi())  # the API's days are Nairobi's, whatever the workstation's zone
        self.from_date, self.to_date = QDateEdit(today.addDays(-7)), QDateEdit(today)
        for edit in (self.from_date, self.to_date):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setEnabled(False)
            edit.editingFinished.connect(self._dates_changed)  # not every keystroke of a date being typed
        self.dates_check.toggled.connect(self._dates_toggled)
        self.dates_error = QLabel("")  # a date range that cannot be searched, until the dates are fixed
        self.dates_error.setStyleSheet("color: #b00020;")
        self.status_combo.currentIndexChanged.connect(self.apply_filters)
        self.flagged_combo.currentIndexChanged.connect(self.apply_filters)
        self.search_button, self.clear_button = QPushButton("Search"), QPushButton("Clear")
        self.export_button = QPushButton("Export CSV…")
        self.search_button.clicked.connect(self.apply_filters)
        self.clear_button.clicked.connect(self.clear_filters)
        self.export_button.clicked.connect(self.export_csv)

    def _build_table(self) -> None:
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(24)
        for column, width in enumerate(COLUMN_WIDTHS):
            self.table.setColumnWidth(column, width)
        self.table.doubleClicked.connect(self.open_index)
        for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            shortcut = QShortcut(QKeySequence(key), self.table, context=Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(lambda: self.open_index(self.table.currentIndex()))
        self.count_label = QLabel("")

    def _build_layout(self) -> None:
        # Three short rows, every field able to shrink: with the detail open at 1366x768 the list may narrow
        # to a third of the window, and the story beside it gets the room (two long rows used to block the
        # splitter and push "What happened" off-screen).
        top, second, third = QHBoxLayout(), QHBoxLayout(), QHBoxLayout()
        for widget in (self.search_edit, self.search_button, self.clear_button, self.export_button):
            top.addWidget(widget)
        for widget in (self.status_combo, self.phone_edit, self.account_edit, self.flagged_combo):
            second.addWidget(widget)
        for widget in (self.dates_check, self.from_date, QLabel("to"), self.to_date, self.dates_error):
            third.addWidget(widget)
        third.addStretch(1)
        for edit in (self.search_edit, self.phone_edit, self.account_edit):
            edit.setMinimumWidth(70)
        for combo in (self.status_combo, self.flagged_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(9)
        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        column.addLayout(second)
        column.addLayout(third)
        column.addWidget(self.table, 1)
        column.addWidget(self.count_label)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.detail.hide()
        QVBoxLayout(self).addWidget(self.splitter)

    # --- filters --------------------------------------------------------------------------------------------

    def current_filters(self) -> PaymentFilters:
        """What the filter widgets say now."""
        dated = self.dates_check.isChecked()
        return PaymentFilters(
            status=self.status_combo.currentData() or "", phone=self.phone_edit.text(),
            account=self.account_edit.text(), q=self.search_edit.text(),
            date_from=self.from_date.date().toPython() if dated else None,
            date_to=self.to_date.date().toPython() if dated else None, flagged=self.flagged_combo.currentData())

    def apply_filters(self) -> None:
        """Search with the filters as they are now; a range that cannot be searched says so beside the dates
        (and asks nothing), and the message goes as soon as the dates are valid again."""
        filters = self.current_filters()
        problem = filters.problem()
        self.dates_error.setText(problem)
        if problem:
            self._load_seq += 1  # a load still on its way must not fill the list under the message
            self.count_label.setText("Fix the dates to search.")
            self.loaded.emit()
            return
        self.filters = filters
        self._load_first_page()

    def clear_filters(self) -> None:
        for widget in (self.status_combo, self.flagged_combo, self.phone_edit, self.account_edit,
                       self.search_edit, self.dates_check):
            widget.blockSignals(True)
        self.status_combo.setCurrentIndex(0)
        self.flagged_combo.setCurrentIndex(0)
        for edit in (self.phone_edit, self.account_edit, self.search_edit):
            edit.clear()
        self.dates_check.setChecked(False)
        self._dates_toggled(False, apply=False)
        for widget in (self.status_combo, self.flagged_combo, self.phone_edit, self.account_edit,
                       self.search_edit, self.dates_check):
            widget.blockSignals(False)
        self.apply_filters()

    def _dates_toggled(self, on: bool, apply: bool = True) -> None:
        self.from_date.setEnabled(on)
        self.to_date.setEnabled(on)
        if apply:
            self.apply_filters()

    def _dates_changed(self) -> None:
        if self.dates_check.isChecked():
            self.apply_filters()

    # --- loading --------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """F5: the first page again with the current filters, and the open payment."""
        self.apply_filters()
        if self.detail.payment is not None:
            self.detail.refresh()

    def _load_first_page(self) -> None:
        self._load_seq += 1
        seq, filters, client, size = self._load_seq, self.filters, self.ctx.client, self.page_size
        self.count_label.setText("Loading…")
        self.ctx.run(lambda: client.payments(filters, None, size), lambda page: self._on_first_page(seq, page),
                     lambda exc: self._on_load_error(seq, exc), owner=self)

    def _on_first_page(self, seq: int, page: Page) -> None:
        if seq != self._load_seq:
            return  # a newer filter is on its way
        self.last_error = None
        selected = self.model.payment_at(self.table.currentIndex().row())
        self.model.set_rows(page.items, page.next_cursor)
        self._select(selected.id if selected else None)  # F5 keeps the selection where the row still is
        self._update_count()
        self.loaded.emit()

    def _select(self, payment_id: int | None) -> None:
        row = next((n for n, p in enumerate(self.model.rows) if p.id == payment_id), None)
        if row is not None:
            self.table.selectRow(row)

    # --- the live feed ----------------------------------------------------------------------------------------

    def _follow_feed(self) -> None:
        """Statuses change in place from the feed itself (no request); the open detail reloads at most once a
        second while its payment changes; new payments come with one first-page read at most every
        LIVE_LIST_S, so a busy day stays within the user's read budget."""
        self._detail_timer = QTimer(self, singleShot=True, interval=LIVE_DETAIL_MS, timeout=self.detail.refresh)
        self._list_timer = QTimer(self, singleShot=True, interval=LIVE_LIST_MS, timeout=self._merge_first_page)
        feed_for(self.ctx.client).changed.connect(self._on_feed)

    def _on_feed(self, items: list) -> None:
        events = [item for item in items if item.get("type") == "payment_event"]
        unseen = False
        for item in events:
            if not self.model.set_status(int(item["payment_id"]), str(item.get("status") or "")):
                unseen = unseen or item.get("kind") == "created"
        open_id = self.detail.payment.id if self.detail.payment else None
        if open_id is not None and any(int(item["payment_id"]) == open_id for item in events):
            if not self._detail_timer.isActive():
                self._detail_timer.start()
        linked = self.detail.payment.linked_attempt_ids() if self.detail.payment else set()
        for item in events:  # "Retried as LP2 (processing)" follows LP2 too, from the feed alone
            if int(item["payment_id"]) in linked:
                self.detail.follow_attempt(int(item["payment_id"]), str(item.get("status") or ""))
        if unseen and not self._list_timer.isActive():
            self._list_timer.start()

    def _merge_first_page(self) -> None:
        filters, client, size, seq = self.filters, self.ctx.client, self.page_size, self._load_seq

        def merge(page: Page) -> None:
            if seq == self._load_seq:  # not after a new filter
                self.model.merge_top(page.items)
                self._update_count()

        self.ctx.run(lambda: client.payments(filters, None, size), merge,
                     lambda exc: self.ctx.error(exc, "Following new payments"), owner=self)

    def _on_load_error(self, seq: int, exc: BaseException) -> None:
        if seq != self._load_seq:
            return
        self.last_error = exc
        self.count_label.setText("Could not load payments.")
        self.ctx.error(exc, "Loading payments")
        self.loaded.emit()

    def _fetch_page(self, cursor: str, on_page, on_error) -> None:
        """The model's fetcher: the next page with the filters the list was loaded with, in a worker."""
        filters, client, size = self.filters, self.ctx.client, self.page_size
        self.ctx.run(lambda: client.payments(filters, cursor, size), on_page, on_error, owner=self.model)

    def _update_count(self, *_args) -> None:
        more = " — scroll for more" if self.model.next_cursor else ""
        count = self.model.rowCount()
        if count == 0:
            self.count_label.setText("No payments match these filters." if self.filters != PaymentFilters()
                                     else "No payments yet.")
            return
        self.count_label.setText(f"{count:,} payment{'' if count == 1 else 's'} shown{more}")

    # --- detail and shortcuts -------------------------------------------------------------------------------

    def open_index(self, index: QModelIndex) -> None:
        payment = self.model.payment_at(index.row()) if index.isValid() else None
        if payment is not None:
            self.open_payment(payment)

    def open_payment(self, payment: Payment) -> None:
        """Show the detail beside the list."""
        if not self.detail.isVisible():
            self.detail.show()
            width = max(self.splitter.width(), 1000)
            self.splitter.setSizes([width * 9 // 20, width * 11 // 20])  # the story needs the room
        self.detail.show_payment(payment)

    def _shortcut(self, action: str) -> None:
        """Ctrl+R / Ctrl+P act on the row selected in the list, never on a payment still open in the panel
        but no longer selected or listed: a different row is opened first and the action runs once its
        fresh detail has loaded. The same rule that enables the button decides (status and role)."""
        index = self.table.currentIndex()
        selected = self.model.payment_at(index.row()) if index.isValid() else None
        if selected is None:
            self.ctx.info("Select a payment in the list first.")
            return
        if self.detail.payment is None or self.detail.payment.id != selected.id or self.detail.detail is None:
            self._pending_shortcut = (selected.id, action)
            self.open_payment(selected)
            return
        self._act_if_allowed(action)

    def _run_pending_shortcut(self) -> None:
        pending, self._pending_shortcut = self._pending_shortcut, None
        loaded = self.detail.detail  # None when the load failed (its error is already in the message bar)
        if pending and loaded is not None and loaded.payment.id == pending[0]:
            self._act_if_allowed(pending[1])

    def _act_if_allowed(self, action: str) -> None:
        button, p = self.detail.buttons[action], self.detail.payment
        if not button.isEnabled():
            self.ctx.info(f"{button.text().rstrip('…')} is not available for {p.reference} "
                          f"({p.status.replace('_', ' ').lower()}, signed in as {self.ctx.role}).")
            return
        (self.detail.requery if action == REQUERY else self.detail.print_receipt)()

    def focus_search(self) -> None:
        self.search_edit.setFocus()
        self.search_edit.selectAll()

    def requery(self) -> None:
        self._shortcut(REQUERY)

    def print_receipt(self) -> None:
        self._shortcut(PRINT)

    # --- export ---------------------------------------------------------------------------------------------

    def export_csv(self) -> None:
        """Every payment the current filters match (not just the loaded rows), paged and written in a worker,
        with a progress window whose Cancel stops it (the file only appears once complete)."""
        path = self.choose_export_path()
        if not path:
            return
        filters, client, size = self.current_filters(), self.ctx.client, self.export_page_size
        stop = threading.Event()
        dialog = self._export_dialog(path, stop)
        self.export_button.setEnabled(False)
        self.ctx.info(f"Exporting payments to {path}…")

        def export() -> int:
            return export_payments(client.iter_payments(filters, page_size=size), path, every=size,
                                   progress=self._emit_progress, cancelled=stop.is_set)

        def finished() -> None:
            self._export_box = None
            dialog.hide()
            dialog.deleteLater()
            self.export_button.setEnabled(True)

        self.ctx.run(export, lambda count: self._exported(count, path), lambda exc: self._export_failed(exc, path),
                     on_finished=finished, owner=self)

    def _export_dialog(self, path: str, stop: threading.Event) -> QProgressDialog:
        """Busy (the total is not known before the last page), counting what is written; Cancel sets ``stop``."""
        dialog = QProgressDialog(f"Exporting payments to {path}…", "Cancel", 0, 0, self)
        dialog.setWindowTitle("Export CSV")
        dialog.setWindowModality(Qt.WindowModality.NonModal)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setMinimumDuration(0)
        dialog.canceled.connect(stop.set)
        dialog.canceled.connect(lambda: dialog.setLabelText("Stopping the export…"))
        self._export_box = dialog
        dialog.show()
        return dialog

    def _show_export_progress(self, count: int) -> None:
        box = self._export_box
        if box is not None and shiboken6.isValid(box) and not box.wasCanceled():
            box.setLabelText(f"{count:,} payments written so far…")

    def _emit_progress(self, count: int) -> None:
        """Called on the worker thread; the signal reaches the dialog queued on the GUI thread."""
        if shiboken6.isValid(self):
            self.export_progress.emit(count)

    def _exported(self, count: int, path: str) -> None:
        self.ctx.info(f"Exported {count:,} payments to {path}.")
        self.exported.emit(count)

    def _export_failed(self, exc: BaseException, path: str) -> None:
        if isinstance(exc, ExportCancelled):
            self.ctx.info(f"Export cancelled: nothing was written to {path}.")
            self.export_cancelled.emit()
            return
        self.ctx.error(exc, "Export")
