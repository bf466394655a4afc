"""The Reconciliation screen: past runs from the gateway, an upload previewed (dry run) before it is imported
and followed while it imports in the background, a run's exceptions page by page with their payments'
references, each resolved with a note (its alert acknowledged) or opened in the Payments screen. A run importing
shows a progress dialog whose Cancel asks the gateway to stop it (the lines matched so far stay)."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from admin_app.core.models import local_time, parse_time, role_at_least

from . import Screen, ScreenContext
from .alerts_view import open_payment_in_window
from .charts import RecordsModel, records_table

COLUMNS = (("Id", lambda e: e["id"]), ("Status", lambda e: e["status"].title()),
           ("Kind", lambda e: KIND_NAMES.get(e["kind"], e["kind"].replace("_", " "))),
           ("Payment", lambda e: e.get("payment_reference") or ("—" if not e["payment_id"] else f"#{e['payment_id']}")),
           ("Details", lambda e: _details(e["details"])), ("Note", lambda e: e["resolution_note"] or ""))
KIND_NAMES = {"missing_in_lipa": "Money not in Lipa", "unpaid_in_lipa": "Unpaid in Lipa",
              "missing_in_statement": "Not on the statement", "amount_mismatch": "Amount differs",
              "duplicate": "Receipt twice"}
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # the gateway's limit for a statement
FOLLOW_MS = 1000  # a background import's progress is read once a second while it runs
RUNNING = ("QUEUED", "IMPORTING")
PAGE = 100  # exceptions per page; further pages on demand


def _details(details) -> str:
    return json.dumps(details, ensure_ascii=False)[:200] if isinstance(details, (dict, list)) else str(details or "")


def choose_statement(parent: QWidget) -> str:
    """The default chooser: an open dialog; an empty string when cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, "Upload M-Pesa statement", "", "CSV files (*.csv);;All files (*)")
    return path


def ask_note(parent: QWidget, exception: dict) -> str | None:
    """The default note dialog; None when cancelled, "" when left empty."""
    note, ok = QInputDialog.getText(parent, f"Resolve exception {exception['id']}", "Why is this settled?")
    return note.strip() if ok else None


def confirm_import(parent: QWidget, preview: dict) -> bool:
    """The default: the dry run's summary, and Import / Cancel."""
    answer = QMessageBox.question(parent, "Import this statement?", preview_text(preview),
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                  QMessageBox.StandardButton.Cancel)
    return answer == QMessageBox.StandardButton.Yes


def confirm_cancel(parent: QWidget, run: dict) -> bool:
    """The default: stop this import? (closing the progress window asks too, so it never cancels by accident)."""
    answer = QMessageBox.question(parent, "Stop this import?", cancel_text(run),
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def cancel_text(run: dict) -> str:
    """What a cancel keeps, in words, before staff decide."""
    return (f"Stop importing {run.get('filename', '')} (run #{run['id']})?\n"
            "The lines matched so far stay matched; the rest are not read, and payments missing from the "
            "statement are not looked for. Upload the same file again to finish it.")


def progress_text(run: dict) -> str:
    return (f"Importing {run.get('filename', '')} (run #{run['id']}) in the background: "
            f"{run.get('lines_done', 0):,} of {run.get('lines_total', 0):,} lines.")


def preview_text(preview: dict) -> str:
    """What a dry run found, in words (for a file whose import was cancelled: what importing it again does)."""
    if preview.get("status") == "CANCELLED":
        return (f"This file's import (run #{preview['id']}) was cancelled after {preview.get('lines_done', 0):,} "
                f"of {preview.get('lines_total', 0):,} lines.\nImporting it again goes on after the lines it kept.")
    kinds = ", ".join(f"{count:,} {KIND_NAMES.get(kind, kind).lower()}" for kind, row in
                      sorted((preview.get("exceptions_by_kind") or {}).items()) for count in [row.get("OPEN", 0)]
                      if count)
    unknown = preview.get("unknown_money") or {}
    return (f"{preview.get('lines', 0):,} lines: {preview.get('matched', 0):,} match Lipa's payments, "
            f"{preview.get('would_settle', 0):,} would be settled.\n"
            f"{preview.get('exceptions', 0):,} exceptions for review{': ' + kinds if kinds else ''}.\n"
            f"Money Lipa does not know: {unknown.get('count', 0):,} lines, KES {unknown.get('amount', 0):,}.\n"
            "Nothing has been written yet.")


def summary_text(run: dict) -> str:
    """One line about a run."""
    text = (f"Run #{run['id']} — {run.get('filename', '')}: {run.get('lines', 0):,} lines, "
            f"{run.get('matched', 0):,} matched, {run.get('exceptions', 0):,} exceptions "
            f"({run.get('open_exceptions', 0):,} open)")
    status = run.get("status", "DONE")
    if status == "CANCELLED":
        return (f"Run #{run['id']} — {run.get('filename', '')}: cancelled after {run.get('lines_done', 0):,} of "
                f"{run.get('lines_total', 0):,} lines (those stay matched; upload the file again to finish it)")
    if status in RUNNING:
        return (f"Run #{run['id']} — {run.get('filename', '')}: importing in the background, "
                f"{run.get('lines_done', 0):,} of {run.get('lines_total', 0):,} lines "
                f"({100 * float(run.get('progress') or 0):.0f} %)")
    if status == "FAILED":
        return f"Run #{run['id']} — {run.get('filename', '')}: the import failed ({run.get('error') or 'no reason'})"
    return text


def run_item_text(run: dict) -> str:
    """A run in the list of past runs: number, file, period and what is left to do."""
    when = local_time(parse_time(run.get("created_at")))[:16]
    state = {"QUEUED": "queued", "IMPORTING": f"importing {100 * float(run.get('progress') or 0):.0f} %",
             "FAILED": "failed", "CANCELLED": "cancelled"}.get(run.get("status", "DONE"),
                                                               f"{run.get('exceptions', 0):,} exceptions")
    return f"#{run['id']} {run.get('filename', '')}\n{when} EAT · {state}"


class ReconciliationView(Screen):
    """Past runs (newest first), a run's exceptions page by page, uploads previewed then followed in the
    background; Ctrl+U uploads, Ctrl+E resolves the selected exception, Enter or double-click opens its payment."""

    key = "reconciliation"
    title = "Reconciliation"

    def __init__(self, ctx: ScreenContext, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self.choose_statement = lambda: choose_statement(self)
        self.ask_note = lambda exception: ask_note(self, exception)
        self.confirm_import = lambda preview: confirm_import(self, preview)
        self.open_payment = lambda payment_id: open_payment_in_window(self, payment_id)
        self.confirm_cancel = lambda run: confirm_cancel(self, run)
        self._stopping: int | None = None  # the run whose cancel this screen asked for
        self.runs: dict[int, dict] = {}
        self.run: dict | None = None
        self.next_cursor: str | None = None
        self._follow = QTimer(self, singleShot=True, interval=FOLLOW_MS, timeout=self._follow_run)
        self._build_controls()
        self._build_tables()
        self._build_layout()
        self._update_buttons()

    def _build_controls(self) -> None:
        self.upload_button, self.resolve_button = QPushButton("&Upload statement…"), QPushButton("R&esolve…")
        self.open_button, self.more_button = QPushButton("&Open payment"), QPushButton("Load more exceptions")
        self.upload_button.clicked.connect(self.upload)
        self.resolve_button.clicked.connect(self.resolve_current)
        self.open_button.clicked.connect(self.open_current_payment)
        self.more_button.clicked.connect(self.load_more)
        QShortcut(QKeySequence("Ctrl+U"), self, activated=self.upload)
        QShortcut(QKeySequence("Ctrl+E"), self, activated=self.resolve_current)
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.PlainText)
        self.progress = QProgressDialog("", "Cancel import", 0, 100, self)
        self.progress.setWindowTitle("Importing statement")
        self.progress.setWindowModality(Qt.WindowModality.NonModal)  # the rest of the app stays usable
        self.progress.setAutoClose(False)
        self.progress.setAutoReset(False)
        self.progress.reset()  # stops the timer that would show it, empty, a few seconds from now
        self.progress.canceled.connect(self.cancel_import)
        self.progress.hide()

    def _build_tables(self) -> None:
        self.history = QListWidget()
        self.history.setWordWrap(True)  # a run's file name and state on their own lines, never cut
        self.history.itemActivated.connect(lambda item: self.open_run(item.data(Qt.ItemDataRole.UserRole)))
        self.history.itemClicked.connect(lambda item: self.open_run(item.data(Qt.ItemDataRole.UserRole)))
        colour = lambda e: "#fff1c2" if e["status"] == "OPEN" else None  # noqa: E731
        self.model = RecordsModel(COLUMNS, colour, self)
        self.table = records_table(self.model, (55, 75, 150, 110, 420), wrap=True)
        self.table.selectionModel().currentRowChanged.connect(self._update_buttons)
        self.table.doubleClicked.connect(lambda _index: self.open_current_payment())
        for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            shortcut = QShortcut(QKeySequence(key), self.table, context=Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(self.open_current_payment)

    def _build_layout(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.upload_button)
        top.addStretch(1)
        for widget in (self.open_button, self.resolve_button):
            top.addWidget(widget)
        left = QWidget()
        left_column = QVBoxLayout(left)
        left_column.setContentsMargins(0, 0, 0, 0)
        left_column.addWidget(QLabel("Runs (newest first)"))
        left_column.addWidget(self.history)
        right = QWidget()
        right_column = QVBoxLayout(right)
        right_column.setContentsMargins(0, 0, 0, 0)
        right_column.addWidget(self.table, 1)
        right_column.addWidget(self.more_button)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([300, 900])
        column = QVBoxLayout(self)
        column.addLayout(top)
        column.addWidget(self.summary_label)
        column.addWidget(splitter, 1)
        for first, second in ((self.upload_button, self.open_button), (self.open_button, self.resolve_button),
                              (self.resolve_button, self.history), (self.history, self.table)):
            QWidget.setTabOrder(first, second)

    # --- loading --------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """The list of past runs, then the open run again (the newest one the first time)."""
        client = self.ctx.client
        self.ctx.run(lambda: client.reconciliation_runs(), self._on_runs, self._on_error, owner=self)

    def _on_runs(self, body: dict) -> None:
        self.runs = {run["id"]: run for run in body["items"]}
        self._show_history()
        if self.run is not None or self.runs:
            self.open_run(self.run["id"] if self.run else max(self.runs))
            return
        self.last_error = None
        self.summary_label.setText("No statement uploaded yet." + (" Upload one with Ctrl+U." if self._operator()
                                                                   else ""))
        self.loaded.emit()

    def open_run(self, run_id: int) -> None:
        """A run's summary and its first page of exceptions, open ones first, in a worker."""
        client = self.ctx.client
        self.ctx.run(lambda: client.reconciliation_run(int(run_id)), self._on_run, self._on_error, owner=self)

    def _on_run(self, body: dict) -> None:
        self.last_error = None
        was = self.run if self.run and self.run["id"] == body["run"]["id"] else {}
        self.run, self.next_cursor = body["run"], body.get("next_cursor")
        if was.get("status") in RUNNING and self.run.get("status") not in RUNNING and self.run["id"] != self._stopping:
            self.ctx.info(summary_text(self.run) + ".")  # the import followed here has ended: say how
        self.runs[self.run["id"]] = {**self.runs.get(self.run["id"], {}), **self.run}
        self._show_history()
        self.summary_label.setText(summary_text(self.run))
        self.model.set_rows(body["items"])
        self._update_buttons()
        self._show_progress(self.run)
        if self.run.get("status") in RUNNING:
            self._follow.start()
        self.loaded.emit()

    def load_more(self) -> None:
        """The next page of the open run's exceptions (never every page at once: the read budget)."""
        if not (self.run and self.next_cursor):
            return
        client, run_id, cursor = self.ctx.client, self.run["id"], self.next_cursor
        self.more_button.setEnabled(False)

        def more(body: dict) -> None:
            if self.run and self.run["id"] == run_id:
                self.model.append_rows(body["items"])
                self.next_cursor = body.get("next_cursor")
            self._update_buttons()

        self.ctx.run(lambda: client.reconciliation_run(run_id, cursor=cursor), more, self._on_error, owner=self)

    def _follow_run(self) -> None:
        if self.run and self.run.get("status") in RUNNING and self.isVisible():
            self.open_run(self.run["id"])

    def _show_progress(self, run: dict) -> None:
        """The progress dialog while the open run imports (an operator's, who may cancel it); gone after."""
        if run.get("status") not in RUNNING or not self._operator() or not self.isVisible():
            self.progress.hide()
            return
        self.progress.setLabelText(progress_text(run))
        self.progress.setMaximum(max(int(run.get("lines_total") or 0), 1))
        self.progress.setValue(min(int(run.get("lines_done") or 0), self.progress.maximum()))
        if not self.progress.isVisible():
            self.progress.show()

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Another screen is shown: the progress window goes too (following stops while hidden)."""
        self.progress.hide()
        super().hideEvent(event)

    def cancel_import(self) -> None:
        """The progress dialog's Cancel (or its close box): confirm, then ask the gateway to stop the run."""
        run = self.run
        if not run or run.get("status") not in RUNNING:
            return
        if not self.confirm_cancel(run):
            self._show_progress(run)  # not cancelled: keep following it
            return
        client, run_id = self.ctx.client, run["id"]
        self._stopping = run_id  # the cancel's own answer says how it ended
        self.progress.hide()
        self.summary_label.setText(f"Stopping the import of run #{run_id}…")
        self.ctx.run(lambda: client.cancel_import(run_id), self._cancelled, self._cancel_failed, owner=self)

    def _cancelled(self, run: dict) -> None:
        self.ctx.info(f"Import of run #{run['id']} cancelled after {run.get('lines_done', 0):,} of "
                      f"{run.get('lines_total', 0):,} lines; the lines matched so far stay.")
        self.open_run(run["id"])

    def _cancel_failed(self, exc: BaseException) -> None:
        self.ctx.action_failed(exc, "Cancelling the import")
        if self.run:
            self.open_run(self.run["id"])  # it may have finished meanwhile: show what it is now

    def _on_error(self, exc: BaseException) -> None:
        self.last_error = exc
        self.ctx.error(exc, "Loading reconciliation")
        self._update_buttons()
        self.loaded.emit()

    def _show_history(self) -> None:
        self.history.clear()
        for run_id in sorted(self.runs, reverse=True):
            item = QListWidgetItem(run_item_text(self.runs[run_id]))
            item.setData(Qt.ItemDataRole.UserRole, run_id)
            item.setToolTip(summary_text(self.runs[run_id]))
            self.history.addItem(item)
            if self.run and run_id == self.run["id"]:
                self.history.setCurrentItem(item)

    # --- actions --------------------------------------------------------------------------------------------

    def _operator(self) -> bool:
        return role_at_least(self.ctx.role, "operator")

    def _update_buttons(self, *_args) -> None:
        operator, exception = self._operator(), self.current()
        self.upload_button.setEnabled(operator)
        self.upload_button.setVisible(operator)  # a viewer is never offered an upload
        self.resolve_button.setEnabled(bool(operator and exception and exception["status"] == "OPEN"))
        self.resolve_button.setToolTip("" if operator else "Resolving needs an operator or admin.")
        self.open_button.setEnabled(bool(exception and exception.get("payment_id")))
        self.more_button.setVisible(bool(self.next_cursor))
        self.more_button.setEnabled(bool(self.next_cursor))

    def current(self) -> dict | None:
        return self.model.row(self.table.currentIndex().row())

    def open_current_payment(self) -> None:
        exception = self.current()
        if exception and exception.get("payment_id"):
            self.open_payment(int(exception["payment_id"]))
        elif exception:
            self.ctx.info("This exception is about money Lipa has no payment for.")

    def upload(self) -> None:
        """Choose a CSV, preview what importing it would do (nothing written), then import on Yes."""
        if not self.upload_button.isEnabled():
            return
        path = self.choose_statement()
        if not path:
            return
        name, size = Path(path).name, Path(path).stat().st_size
        if size > MAX_UPLOAD_BYTES:
            self.ctx.info(f"{name} is {size / 1e6:.1f} MB; the gateway takes statements up to 20 MB. "
                          "Export a shorter period from the M-Pesa portal.")
            return
        data, client = Path(path).read_bytes(), self.ctx.client
        self.upload_button.setEnabled(False)
        self.summary_label.setText(f"Checking {name}…")
        self.ctx.run(lambda: client.upload_statement(data, name, dry_run=True),
                     lambda preview: self._previewed(preview, data, name), self._upload_failed, owner=self)

    def _previewed(self, preview: dict, data: bytes, name: str) -> None:
        if preview.get("already_imported") and preview.get("status") != "CANCELLED":  # cancelled: resumable
            self._update_buttons()
            self.ctx.info(f"{name} was imported already (run #{preview['id']}).")
            self.open_run(preview["id"])
            return
        if not self.confirm_import(preview):
            self._update_buttons()
            self.summary_label.setText(f"{name} not imported.")
            return
        client = self.ctx.client
        self.summary_label.setText(f"Uploading {name}…")
        self.ctx.run(lambda: client.upload_statement(data, name), self._uploaded, self._upload_failed,
                     self._update_buttons, owner=self)

    def _uploaded(self, run: dict) -> None:
        self.ctx.info(f"Statement imported as run #{run['id']}." if run.get("status") == "DONE" else
                      f"Run #{run['id']} is importing in the background; its progress shows here.")
        self.open_run(run["id"])

    def _upload_failed(self, exc: BaseException) -> None:
        self.summary_label.setText("The statement was not imported.")
        self._update_buttons()
        self.ctx.action_failed(exc, "Uploading the statement")

    def resolve_current(self) -> None:
        """Ask for a note, resolve the selected exception in a worker, then move on to the next open one."""
        exception = self.current()
        if exception is None or not self.resolve_button.isEnabled():
            return
        note = self.ask_note(exception)
        if note is None:
            return
        if not note:
            self.ctx.info("Nothing resolved: say why in the note.")
            return
        client, row = self.ctx.client, self.table.currentIndex().row()
        self.resolve_button.setEnabled(False)
        self.ctx.run(lambda: client.resolve_exception(exception["id"], note), lambda _e: self._resolved(row),
                     lambda exc: self.ctx.action_failed(exc, "Resolving the exception"), owner=self)

    def _resolved(self, row: int) -> None:
        self.ctx.info("Exception resolved (its alert is acknowledged too).")
        self.loaded.connect(lambda: self.table.selectRow(0), Qt.ConnectionType.SingleShotConnection)
        self.open_run(self.run["id"])
