"""The Reconciliation screen: upload an M-Pesa statement CSV in a worker, see matched and exception counts,
resolve the exceptions one by one with a note, and go back to the runs of this session (or any run id)."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from admin_app.core.models import role_at_least

from . import Screen, ScreenContext
from .charts import RecordsModel, records_table

COLUMNS = (("Id", lambda e: e["id"]), ("Status", lambda e: e["status"]), ("Kind", lambda e: e["kind"]),
           ("Payment", lambda e: e["payment_id"] or ""), ("Line", lambda e: e["line_id"] or ""),
           ("Details", lambda e: _details(e["details"])), ("Note", lambda e: e["resolution_note"] or ""))


def _details(details) -> str:
    return json.dumps(details, ensure_ascii=False)[:200] if isinstance(details, (dict, list)) else str(details or "")


def choose_statement(parent: QWidget) -> str:
    """The default chooser: an open dialog; an empty string when cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, "Upload M-Pesa statement", "", "CSV files (*.csv);;All files (*)")
    return path


def ask_note(parent: QWidget, exception: dict) -> str | None:
    """The default note dialog; None when cancelled or empty."""
    note, ok = QInputDialog.getText(parent, f"Resolve exception {exception['id']}", "Why is this settled?")
    return note.strip() if ok and note.strip() else None


def summary_text(run: dict) -> str:
    """One line about a run."""
    return (f"Run #{run['id']} — {run.get('filename', '')}: {run.get('lines', 0)} lines, {run.get('matched', 0)} "
            f"matched, {run.get('exceptions', 0)} exceptions ({run.get('open_exceptions', 0)} open)")


class ReconciliationView(Screen):
    """Statement uploads and their exceptions; Ctrl+U uploads, Ctrl+E resolves the selected exception."""

    key = "reconciliation"
    title = "Reconciliation"

    def __init__(self, ctx: ScreenContext, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self.choose_statement = lambda: choose_statement(self)
        self.ask_note = lambda exception: ask_note(self, exception)
        self.runs: dict[int, dict] = {}
        self.run: dict | None = None
        self._build_controls()
        self._build_tables()
        self._build_layout()
        self._update_buttons()

    def _build_controls(self) -> None:
        self.upload_button, self.resolve_button = QPushButton("&Upload statement…"), QPushButton("R&esolve…")
        self.run_id_spin, self.open_run_button = QSpinBox(), QPushButton("Open run")
        self.run_id_spin.setRange(1, 2_000_000_000)
        self.upload_button.clicked.connect(self.upload)
        self.resolve_button.clicked.connect(self.resolve_current)
        self.open_run_button.clicked.connect(lambda: self.open_run(self.run_id_spin.value()))
        QShortcut(QKeySequence("Ctrl+U"), self, activated=self.upload)
        QShortcut(QKeySequence("Ctrl+E"), self, activated=self.resolve_current)
        self.summary_label = QLabel("Upload a statement (Ctrl+U) or open a run by its number.")
        self.summary_label.setWordWrap(True)

    def _build_tables(self) -> None:
        self.history = QListWidget()
        self.history.itemActivated.connect(lambda item: self.open_run(item.data(Qt.ItemDataRole.UserRole)))
        self.history.itemClicked.connect(lambda item: self.open_run(item.data(Qt.ItemDataRole.UserRole)))
        colour = lambda e: "#fff1c2" if e["status"] == "OPEN" else None  # noqa: E731
        self.model = RecordsModel(COLUMNS, colour, self)
        self.table = records_table(self.model, (55, 75, 140, 70, 55, 400))
        self.table.selectionModel().currentRowChanged.connect(self._update_buttons)
        self.table.doubleClicked.connect(lambda _index: self.resolve_current())

    def _build_layout(self) -> None:
        top = QHBoxLayout()
        for widget in (self.upload_button, QLabel("Run #"), self.run_id_spin, self.open_run_button):
            top.addWidget(widget)
        top.addStretch(1)
        top.addWidget(self.resolve_button)
        left = QWidget()
        left_column = QVBoxLayout(left)
        left_column.setContentsMargins(0, 0, 0, 0)
        left_column.addWidget(QLabel("Runs"))
        left_column.addWidget(self.history)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.table)
        splitter.setSizes([260, 900])
        column = QVBoxLayout(self)
        column.addLayout(top)
        column.addWidget(self.summary_label)
        column.addWidget(splitter, 1)
        for first, second in ((self.upload_button, self.run_id_spin), (self.run_id_spin, self.open_run_button),
                              (self.open_run_button, self.resolve_button), (self.resolve_button, self.history),
                              (self.history, self.table)):
            QWidget.setTabOrder(first, second)

    # --- loading --------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the open run, if any (the API has no list of runs)."""
        if self.run is None:
            self.last_error = None
            self.loaded.emit()
        else:
            self.open_run(self.run["id"])

    def open_run(self, run_id: int) -> None:
        """A run's summary and its exceptions, open ones first, in a worker."""
        client = self.ctx.client
        self.ctx.run(lambda: _whole_run(client, int(run_id)), self._on_run, self._on_error, owner=self)

    def _on_run(self, body: dict) -> None:
        self.last_error = None
        self.run = body["run"]
        self._remember(self.run)
        self.summary_label.setText(summary_text(self.run))
        self.model.set_rows(body["items"])
        self._update_buttons()
        self.loaded.emit()

    def _on_error(self, exc: BaseException) -> None:
        self.last_error = exc
        self.ctx.error(exc, "Loading the reconciliation run")
        self.loaded.emit()

    def _remember(self, run: dict) -> None:
        """Add or update the run in the session's history list."""
        self.runs[run["id"]] = run
        self.history.clear()
        for run_id in sorted(self.runs, reverse=True):
            item = QListWidgetItem(summary_text(self.runs[run_id]).split(": ")[0] + f" ({self.runs[run_id]['matched']}"
                                   f" matched, {self.runs[run_id]['open_exceptions']} open)")
            item.setData(Qt.ItemDataRole.UserRole, run_id)
            self.history.addItem(item)

    # --- actions --------------------------------------------------------------------------------------------

    def _update_buttons(self, *_args) -> None:
        operator = role_at_least(self.ctx.role, "operator")
        exception = self.current()
        self.upload_button.setEnabled(operator)
        self.resolve_button.setEnabled(bool(operator and exception and exception["status"] == "OPEN"))

    def current(self) -> dict | None:
        return self.model.row(self.table.currentIndex().row())

    def upload(self) -> None:
        """Choose a CSV, upload it in a worker, then show the run it made."""
        if not self.upload_button.isEnabled():
            return
        path = self.choose_statement()
        if not path:
            return
        client = self.ctx.client
        self.upload_button.setEnabled(False)
        self.summary_label.setText(f"Uploading {Path(path).name}…")
        self.ctx.run(lambda: client.upload_statement(Path(path).read_bytes(), Path(path).name),
                     lambda run: self.open_run(run["id"]), lambda exc: self.ctx.error(exc, "Uploading the statement"),
                     self._update_buttons, owner=self)

    def resolve_current(self) -> None:
        """Ask for a note, resolve the selected exception in a worker, then move on to the next open one."""
        exception = self.current()
        if exception is None or not self.resolve_button.isEnabled():
            return
        note = self.ask_note(exception)
        if not note:
            return
        client, row = self.ctx.client, self.table.currentIndex().row()
        self.resolve_button.setEnabled(False)
        self.ctx.run(lambda: client.resolve_exception(exception["id"], note), lambda _e: self._resolved(row),
                     lambda exc: self.ctx.error(exc, "Resolving the exception"), owner=self)

    def _resolved(self, row: int) -> None:
        self.ctx.info("Exception resolved.")
        self.loaded.connect(lambda: self.table.selectRow(0), Qt.ConnectionType.SingleShotConnection)
        self.refresh()


def _whole_run(client, run_id: int) -> dict:
    """Every page of a run's exceptions (open first) with its summary."""
    body = client.reconciliation_run(run_id)
    items, cursor = list(body["items"]), body.get("next_cursor")
    while cursor:
        page = client.reconciliation_run(run_id, cursor=cursor)
        items += page["items"]
        cursor = page.get("next_cursor")
    return {"run": body["run"], "items": items}
