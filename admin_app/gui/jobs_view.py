"""The Jobs screen: each scheduled job's runs, success rate, mean duration, last run and pause, with Run now
for operators (disabled for viewers)."""
from __future__ import annotations

from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from admin_app.core.dashboard_data import percent, seconds
from admin_app.core.models import role_at_least

from . import ScreenContext
from .charts import RecordsModel, records_table
from .live_screen import LiveScreen


def _last(job: dict) -> str:
    last = job.get("last_run") or {}
    if not last:
        return "never"
    return f"{(last.get('started_at') or '')[:19]} {last.get('outcome') or ''}".strip()


COLUMNS = (("Job", lambda j: j["name"]), ("Runs", lambda j: j["runs"]), ("OK", lambda j: j["ok"]),
           ("Failed", lambda j: j["failed"]), ("Success", lambda j: percent(j["success_rate"])),
           ("Mean", lambda j: seconds(j["mean_duration_s"])), ("Last run (UTC)", _last),
           ("Paused", lambda j: "paused" if j["paused"] else ""), ("Every", lambda j: seconds(j.get("interval_s"))),
           ("Next run (UTC)", lambda j: (j.get("next_run_at") or "")[:19]),
           ("Last error", lambda j: ((j.get("last_run") or {}).get("error") or "")[:120]))


class JobsView(LiveScreen):
    """Job statistics; Ctrl+Enter or Run now runs the selected job (operator+). Job runs are not in the
    live feed: F5 and Run now reload."""

    key = "jobs"
    title = "Jobs"
    error_context = "Loading jobs"

    def __init__(self, ctx: ScreenContext, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        colour = lambda j: "#e8e8e8" if j["paused"] else ("#fbd5d5" if _failed(j) else None)  # noqa: E731
        self.model = RecordsModel(COLUMNS, colour, self)
        self.table = records_table(self.model, (150, 50, 45, 50, 65, 65, 190, 55, 60, 140))
        self.table.selectionModel().currentRowChanged.connect(self._update_buttons)
        self.run_button, self.refresh_button = QPushButton("&Run now"), QPushButton("Refresh (F5)")
        self.run_button.clicked.connect(self.run_now)
        self.refresh_button.clicked.connect(self.refresh)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.run_now)
        self.status_label = QLabel("")
        self.running: str | None = None
        self._build_layout()
        self._update_buttons()

    def _build_layout(self) -> None:
        row = QHBoxLayout()
        row.addWidget(self.status_label, 1)
        row.addWidget(self.refresh_button)
        row.addWidget(self.run_button)
        column = QVBoxLayout(self)
        column.addWidget(self.table, 1)
        column.addLayout(row)
        QWidget.setTabOrder(self.table, self.run_button)

    def loader(self):
        return self.ctx.client.jobs

    def show_data(self, jobs: list[dict]) -> None:
        """The statistics, keeping the selected job selected."""
        selected = self.current()
        self.model.set_rows(jobs)
        names = [j["name"] for j in jobs]
        if selected and selected["name"] in names:
            self.table.selectRow(names.index(selected["name"]))
        self._update_buttons()

    def current(self) -> dict | None:
        return self.model.row(self.table.currentIndex().row())

    def _update_buttons(self, *_args) -> None:
        allowed = role_at_least(self.ctx.role, "operator")
        self.run_button.setEnabled(bool(allowed and self.current() and self.running is None))
        self.run_button.setToolTip("" if allowed else "Running a job needs the operator role.")

    def run_now(self) -> None:
        """Run the selected job on the gateway (in a worker), then reload the statistics."""
        job = self.current()
        if job is None or not self.run_button.isEnabled():
            return
        name, client = job["name"], self.ctx.client
        self.running = name
        self.status_label.setText(f"Running {name}…")
        self._update_buttons()
        self.ctx.run(lambda: client.run_job(name), lambda run: self._ran(name, run),
                     lambda exc: self.ctx.error(exc, f"Running {name}"), self._run_finished, owner=self)

    def _ran(self, name: str, run: dict) -> None:
        self.status_label.setText(f"{name}: {run.get('outcome', 'done')}")
        self.ctx.info(f"Job {name} ran: {run.get('outcome', 'done')}.")

    def _run_finished(self) -> None:
        self.running = None
        self._update_buttons()
        self.refresh()


def _failed(job: dict) -> bool:
    return (job.get("last_run") or {}).get("outcome") == "FAILED"
