"""The Jobs screen: each scheduled job's runs, success rate, mean duration, last run and pause, with Run now
for operators (disabled for viewers)."""
from __future__ import annotations

from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from admin_app.core.dashboard_data import percent, seconds
from admin_app.core.models import role_at_least
from admin_app.core.words import eat, every

from . import ScreenContext
from .charts import RecordsModel, records_table
from .live_screen import LiveScreen


def _last(job: dict) -> str:
    last = job.get("last_run") or {}
    if not last:
        return "never"
    return f"{eat(last.get('started_at'))} {(last.get('outcome') or '').lower()}".strip()


def counts_words(counts) -> str:
    """What a run did: "applied 3, refunds sent 0"; "nothing to do" when every count is zero."""
    if not isinstance(counts, dict) or not counts:
        return ""
    done = [f"{key.replace('_', ' ')} {value:,}" for key, value in counts.items()
            if isinstance(value, int) and not isinstance(value, bool) and value]
    return ", ".join(done) if any(v for v in counts.values() if isinstance(v, int)) else "nothing to do"


COLUMNS = (("Job", lambda j: j["name"]), ("Runs", lambda j: j["runs"]), ("OK", lambda j: j["ok"]),
           ("Failed", lambda j: j["failed"]), ("Success", lambda j: percent(j["success_rate"])),
           ("Mean", lambda j: seconds(j["mean_duration_s"])), ("Last run (EAT)", _last),
           ("Paused", lambda j: "paused" if j["paused"] else ""), ("Schedule", lambda j: every(j.get("interval_s"))),
           ("Next run (EAT)", lambda j: "paused" if j["paused"] else eat(j.get("next_run_at"))),
           ("Last did", lambda j: counts_words((j.get("last_run") or {}).get("counts"))),
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
        self.table = records_table(self.model, (150, 45, 40, 50, 65, 60, 200, 55, 100, 170, 200))
        self.table.selectionModel().currentRowChanged.connect(self._update_buttons)
        self.run_button, self.refresh_button = QPushButton("&Run now"), QPushButton("Refresh (F5)")
        self.pause_button = QPushButton("&Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
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
        row.addWidget(self.pause_button)
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
        allowed, admin, job = role_at_least(self.ctx.role, "operator"), role_at_least(self.ctx.role, "admin"), \
            self.current()
        self.run_button.setEnabled(bool(allowed and job and self.running is None))
        self.run_button.setToolTip("" if allowed else "Running a job needs the operator role.")
        self.pause_button.setText("Res&ume" if job and job["paused"] else "&Pause")
        self.pause_button.setEnabled(bool(admin and job))
        self.pause_button.setToolTip("" if admin else "Pausing and resuming jobs needs the admin role.")

    def toggle_pause(self) -> None:
        """Pause the selected job everywhere, or let a paused one run on its schedule again (admin)."""
        job, client = self.current(), self.ctx.client
        if job is None or not self.pause_button.isEnabled():
            return
        name, resume = job["name"], bool(job["paused"])
        self.pause_button.setEnabled(False)
        self.ctx.run(lambda: client.resume_job(name) if resume else client.pause_job(name),
                     lambda _r: self._switched(name, resume),
                     lambda exc: self.ctx.action_failed(exc, f"Switching {name}"), owner=self)

    def _switched(self, name: str, resumed: bool) -> None:
        self.ctx.info(f"Job {name} {'resumed: it runs on its schedule again' if resumed else 'paused everywhere'}.")
        self.refresh()

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
                     lambda exc: self.ctx.action_failed(exc, f"Running {name}"), self._run_finished, owner=self)

    def _ran(self, name: str, run: dict) -> None:
        did = counts_words(run.get("counts"))
        text = f"{name}: {str(run.get('outcome', 'done')).lower()}" + (f" ({did})" if did else "")
        self.status_label.setText(text)
        self.ctx.info(f"Job {text}.")

    def _run_finished(self) -> None:
        self.running = None
        self._update_buttons()
        self.refresh()


def _failed(job: dict) -> bool:
    return (job.get("last_run") or {}).get("outcome") == "FAILED"
