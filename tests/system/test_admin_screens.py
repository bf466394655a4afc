"""The operations screens (dashboard, alerts, notifications, jobs, reconciliation, receipts) against a live
gateway with seeded data, pytest-qt offscreen, the GUI thread's longest stall measured as in test_admin_gui."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading  # noqa: E402
from datetime import timedelta  # noqa: E402

import pytest  # noqa: E402
import requests  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QPushButton  # noqa: E402

from admin_app.core.dashboard_data import PeriodNumbers  # noqa: E402
from admin_app.gui.main_window import MainWindow  # noqa: E402
from admin_app.gui.receipt_printing import ReceiptPrinter  # noqa: E402
from admin_app.gui.reconciliation_view import preview_text  # noqa: E402
from admin_app.gui.workers import active_workers  # noqa: E402
from shared.db import db  # noqa: E402
from shared.models import Alert, Notification  # noqa: E402
from shared.timeutil import utcnow  # noqa: E402
from tests.system import test_admin_gui as shared_fixtures  # noqa: E402
from tests.conftest import CALLBACK_TOKEN, FIXTURES  # noqa: E402
from tests.helpers import pdf_text  # noqa: E402
from tests.factories import seed  # noqa: E402
from tests.factories import CHECKOUT, PHONE, paid_body  # noqa: E402

pytestmark = pytest.mark.server
WAIT_MS = shared_fixtures.WAIT_MS
gui, meter, staff = shared_fixtures.gui, shared_fixtures.meter, shared_fixtures.staff  # the same fixtures


def off_thread(qtbot, fn):
    """Call fn (a blocking API call of the test itself) on a thread, keeping the GUI thread free; its value."""
    box = {}
    thread = threading.Thread(target=lambda: box.update(value=fn()), daemon=True)
    thread.start()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=WAIT_MS)
    return box["value"]


def show(qtbot, window: MainWindow, key: str):
    """Switch to a screen and wait for its first load."""
    screen = window.screen(key)
    qtbot.waitUntil(lambda: active_workers() == 0, timeout=WAIT_MS)  # the first screen's load is in
    with qtbot.waitSignal(screen.loaded, timeout=WAIT_MS):
        window.show_screen(window.screens.index(screen))
    assert screen.last_error is None, screen.last_error
    return screen


def recent(seconds=20):
    return utcnow() - timedelta(seconds=seconds)


def test_dashboard_equals_stats_and_a_completed_payment_shows_within_2_s(gui, live_process, qtbot):
    seed(3, start=recent(), status="COMPLETED", amount=250)
    seed(2, start=recent(), status="FAILED", result_code="1032", amount=90)
    seed(start=recent(), status="PROCESSING", checkout_request_id=CHECKOUT, phone=PHONE, amount=500)
    window = gui("viewer")
    dash = show(qtbot, window, "dashboard")
    date_from, date_to = dash.period()
    today, period = off_thread(qtbot, lambda: (window.client.stats(), window.client.stats(
        date_from.isoformat(), date_to.isoformat())))
    assert dash.data.today == PeriodNumbers.from_stats(today)
    assert dash.data.period == PeriodNumbers.from_stats(period)
    assert dash.tiles["today_payments"].value.text() == f"{today['payments']['count']:,}" == "6"
    assert dash.tiles["today_success"].value.text() == "60.0 %"
    assert dash.failure_model.rows[0][:2] == ("1032", 2)
    qtbot.waitUntil(lambda: dash.feed.cursor is not None, timeout=WAIT_MS)
    url = f"{live_process.url}/mpesa/stk/callback/{CALLBACK_TOKEN}"
    answer = off_thread(qtbot, lambda: requests.post(url, json=paid_body(), timeout=10))
    assert answer.status_code == 200
    qtbot.waitUntil(lambda: dash.data.today.status("COMPLETED").count == 4, timeout=2000)
    assert dash.tiles["today_payments"].value.text() == "6" and dash.tiles["pending"].value.text() == "0"


def add_alerts(payment_id: int) -> list[int]:
    with db.connection_context():
        return [Alert.create(kind="late_money", message="Money after expiry", payment=payment_id).id,
                Alert.create(kind="unknown_callback", message="Callback for nobody").id,
                Alert.create(kind="old", message="Seen already", acknowledged=True).id]


def test_alerts_badge_acknowledge_and_open_the_payment(gui, qtbot):
    payment_id = seed(start=recent(), status="COMPLETED", mpesa_receipt="QK1ALERT")[0]
    add_alerts(payment_id)
    window = gui("operator")
    alerts = window.screen("alerts")
    row = window.screens.index(alerts)
    qtbot.waitUntil(lambda: window.nav.item(row).text() == "Alerts (2)", timeout=WAIT_MS)
    assert window.alerts_label.text() == "⚠ 2 open alerts"
    show(qtbot, window, "alerts")
    assert [a["acknowledged"] for a in alerts.model.rows] == [False, False, True]
    first = [a["payment_id"] for a in alerts.model.rows].index(payment_id)
    shown = [alerts.model.data(alerts.model.index(first, column)) for column in range(4)]
    assert shown[1].endswith(" EAT") and "T" not in shown[1][:-4] and shown[3] == "LPT000001"  # EAT, a reference
    assert "_" not in shown[2]  # the kind in words
    alerts.table.selectRow(first)
    assert alerts.ack_button.isEnabled()
    alerts.ack_button.click()
    qtbot.waitUntil(lambda: alerts.unread == 1 and window.nav.item(row).text() == "Alerts (1)", timeout=WAIT_MS)
    index = next(alerts.model.index(n, 0) for n, a in enumerate(alerts.model.rows) if a["payment_id"] == payment_id)
    alerts.open_index(index)
    payments = window.screen("payments")
    qtbot.waitUntil(lambda: payments.detail.payment is not None and payments.detail.payment.id == payment_id,
                    timeout=WAIT_MS)
    assert window.current_screen() is payments


def test_alerts_cannot_be_acknowledged_by_a_viewer(gui, qtbot):
    add_alerts(seed(start=recent())[0])
    window = gui("viewer")
    alerts = show(qtbot, window, "alerts")
    alerts.table.selectRow(0)
    assert not alerts.ack_button.isEnabled() and alerts.unread == 2


def test_notifications_show_failures_first(gui, qtbot):
    payment_id = seed(start=recent())[0]
    with db.connection_context():
        for status, reason in (("DELIVERED", ""), ("FAILED", "AbsentSubscriber"), ("SENT", "")):
            Notification.create(channel="sms", kind="payment_completed", payment=payment_id, recipient=PHONE,
                                body="Paid", status=status, failure_reason=reason)
        Notification.create(channel="webhook", kind="webhook_payment_paid", payment=payment_id,
                            recipient="https://shop.example/hook", body="{}", status="QUEUED", attempts=9,
                            failure_reason="HTTP 500")
    window = gui("viewer")
    view = show(qtbot, window, "notifications")
    assert [n["status"] for n in view.model.rows][0] == "FAILED" and len(view.model.rows) == 3
    text = lambda row, column: view.model.data(view.model.index(row, column))  # noqa: E731
    assert text(0, 0) == "Failed" and "AbsentSubscriber" in text(0, 7) and "1 failed" in view.count_label.text()
    assert text(0, 4) == "LPT000001" and text(0, 5).endswith(" EAT") and text(0, 9) == "Paid"
    delivered = next(n for n, row in enumerate(view.model.rows) if row["status"] == "DELIVERED")
    assert text(delivered, 7) == ""  # no failure shown for a message that went out
    view.channel_combo.setCurrentIndex(view.channel_combo.findData("webhook"))
    qtbot.waitUntil(lambda: len(view.model.rows) == 1, timeout=WAIT_MS)
    assert text(0, 0) == "Retrying (9 tries failed)" and text(0, 7) == "HTTP 500"
    assert view.channel_combo.findText("E-mail") == -1  # no channel without anything behind it


def test_jobs_run_now_for_operators_only(gui, qtbot):
    viewer = gui("viewer")
    jobs = show(qtbot, viewer, "jobs")
    jobs.table.selectRow(0)
    assert jobs.model.rowCount() > 0 and not jobs.run_button.isEnabled()
    window = gui("operator")
    jobs = show(qtbot, window, "jobs")
    names = [j["name"] for j in jobs.model.rows]
    jobs.table.selectRow(names.index("expire-pending"))
    assert jobs.run_button.isEnabled()
    with qtbot.waitSignal(jobs.loaded, timeout=WAIT_MS):
        jobs.run_button.click()
    job = next(j for j in jobs.model.rows if j["name"] == "expire-pending")
    assert job["runs"] == 1 and job["last_run"]["outcome"] == "OK" and job["success_rate"] == 1.0
    assert "expire-pending: ok" in jobs.status_label.text() and not jobs.pause_button.isEnabled()  # admin only
    row = [j["name"] for j in jobs.model.rows].index("expire-pending")
    assert jobs.model.data(jobs.model.index(row, 8)).startswith(("every", "daily"))


def test_jobs_pause_and_resume_as_admin(gui, qtbot):
    jobs = show(qtbot, gui("admin"), "jobs")
    jobs.table.selectRow([j["name"] for j in jobs.model.rows].index("reconcile"))
    assert jobs.pause_button.text() == "&Pause"
    with qtbot.waitSignal(jobs.loaded, timeout=WAIT_MS):
        jobs.pause_button.click()
    assert next(j for j in jobs.model.rows if j["name"] == "reconcile")["paused"]
    assert jobs.pause_button.text() == "Res&ume"
    with qtbot.waitSignal(jobs.loaded, timeout=WAIT_MS):
        jobs.pause_button.click()
    assert not next(j for j in jobs.model.rows if j["name"] == "reconcile")["paused"]


def test_receipt_to_pdf_then_the_reprint_text_says_copy(gui, qtbot, tmp_path):
    payment_id = seed(start=recent(), status="COMPLETED", mpesa_receipt="QK7PRINT", amount=1500)[0]
    window = gui("viewer")
    qtbot.waitUntil(lambda: active_workers() == 0 and window.screen("payments").model.rowCount() == 1,
                    timeout=WAIT_MS)  # the first screen has painted its rows
    printer = ReceiptPrinter(window.ctx, window)
    pdf = tmp_path / "receipt.pdf"
    with qtbot.waitSignal(printer.done, timeout=WAIT_MS):
        printer.save_pdf(payment_id, str(pdf))
    assert pdf.read_bytes().startswith(b"%PDF") and "COPY" not in printer.last_text
    assert "QK7PRINT" in pdf_text(pdf.read_bytes()) and "KES 1,500" in pdf_text(pdf.read_bytes())
    with qtbot.waitSignal(printer.text_ready, timeout=WAIT_MS) as blocker:
        printer.thermal_text(payment_id, 80)
    assert "COPY" in blocker.args[0] and "QK7PRINT" in blocker.args[0]
    assert max(len(line) for line in blocker.args[0].splitlines()) <= 48


def test_a_preview_before_printing_leaves_the_first_print_the_original(gui, qtbot, tmp_path):
    payment_id = seed(start=recent(), status="COMPLETED", mpesa_receipt="QK7PREV", amount=900)[0]
    window = gui("viewer")
    qtbot.waitUntil(lambda: active_workers() == 0 and window.screen("payments").model.rowCount() == 1,
                    timeout=WAIT_MS)
    printer = ReceiptPrinter(window.ctx, window)
    previews = []
    printer.show_preview = lambda _printer, text: previews.append(text)
    with qtbot.waitSignal(printer.done, timeout=WAIT_MS):
        printer.preview(payment_id, 58)
    assert "PREVIEW" in previews[0] and "COPY" not in previews[0]
    pdf = tmp_path / "receipt.pdf"
    with qtbot.waitSignal(printer.done, timeout=WAIT_MS):
        printer.save_pdf(payment_id, str(pdf))
    assert "COPY" not in printer.last_text and "PREVIEW" not in printer.last_text


def test_reconciliation_preview_upload_then_resolve_one_by_one(gui, qtbot):
    """The dry run is shown before anything is written; exceptions name payments by reference; Enter opens
    the payment; an empty note resolves nothing; resolving acknowledges the exception's alert."""
    failed = seed(status="FAILED", mpesa_receipt="RKTQDM7W6T", amount=1200, account="12345")[0]
    window = gui("operator")
    view = show(qtbot, window, "reconciliation")
    assert "No statement uploaded yet" in view.summary_label.text()
    view.choose_statement = lambda: str(FIXTURES / "mpesa_statement.csv")
    previews, notes = [], iter(["", "checked with the bank"])
    view.confirm_import = lambda preview: previews.append(preview) or True
    view.ask_note = lambda exception: next(notes)
    with qtbot.waitSignal(view.loaded, timeout=WAIT_MS):
        view.upload()
    assert previews[0]["dry_run"] is True and previews[0]["exceptions"] > 0
    run = view.run
    assert run["status"] == "DONE" and run["exceptions"] == previews[0]["exceptions"]
    assert view.model.rowCount() == run["exceptions"] and view.history.count() == 1
    assert f"{run['matched']} matched" in view.summary_label.text()
    row = next(n for n, e in enumerate(view.model.rows) if e["payment_id"] == failed)
    assert view.model.data(view.model.index(row, 3)) == "LPT000001"  # the reference, not an id
    view.table.selectRow(row)
    view.resolve_current()  # an empty note: nothing is sent
    assert "say why" in window.message_bar.text()
    with qtbot.waitSignal(view.loaded, timeout=WAIT_MS):
        view.resolve_current()
    assert view.run["open_exceptions"] == run["exceptions"] - 1
    with db.connection_context():
        assert Alert.get(Alert.payment == failed, Alert.kind == "recon_unpaid_in_lipa").acknowledged
    view.table.selectRow(next(n for n, e in enumerate(view.model.rows) if e["payment_id"] == failed))
    payments = window.screen("payments")
    view.table.setFocus()
    qtbot.keyClick(view.table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: payments.detail.payment is not None and payments.detail.payment.id == failed,
                    timeout=WAIT_MS)
    assert window.current_screen() is payments


def test_a_large_statement_imports_in_the_background_with_progress(gui, qtbot, tmp_path):
    from bench.recon_data import insert_payments, make_dataset

    data = make_dataset(3000)  # over the gateway's 2,000-line threshold
    with db.connection_context():
        insert_payments(data.payments)
    path = tmp_path / "november.csv"
    path.write_bytes(data.csv_bytes)
    window = gui("operator")
    view = show(qtbot, window, "reconciliation")
    view.choose_statement = lambda: str(path)
    view.confirm_import = lambda preview: True
    seen = []
    view.loaded.connect(lambda: seen.append(view.summary_label.text()))
    view.upload()
    try:
        qtbot.waitUntil(lambda: view.run is not None and view.run["status"] == "DONE", timeout=60_000)
    except Exception:
        raise AssertionError((view.run, window.message_bar.text(), seen))
    assert view.run["lines"] == 3000 and view.run["progress"] == 1.0
    assert "importing in the background" in window.message_bar.text() or any("importing" in t for t in seen)
    assert view.history.count() == 1 and "november.csv" in view.history.item(0).text()


def test_past_runs_are_listed_after_a_restart(gui, qtbot):
    from shared.models import StatementImport

    with db.connection_context():
        for n in range(3):
            StatementImport.create(sha256=f"run{n}", filename=f"week{n}.csv", lines=10 * n, uploaded_by="staff:x")
    view = show(qtbot, gui("viewer"), "reconciliation")
    assert [view.history.item(n).text().split()[1] for n in range(3)] == ["week2.csv", "week1.csv", "week0.csv"]
    assert view.run["filename"] == "week2.csv"  # the newest run is opened


def test_reconciliation_is_read_only_for_viewers(gui, qtbot):
    view = show(qtbot, gui("viewer"), "reconciliation")
    assert not view.upload_button.isEnabled() and not view.resolve_button.isEnabled()
    assert view.upload_button.isHidden() and "Ctrl+U" not in view.summary_label.text()


def open_queued_run(gui, qtbot, lines: int, filename: str):
    """An operator's Reconciliation screen on a queued background import, its progress dialog shown (the
    gateway here runs no scheduler, so the run stays queued until the test moves it)."""
    from bench.recon_data import make_dataset
    from gateway.reconciliation import background, service

    data = make_dataset(lines)
    with db.connection_context():
        run_id = background.queue_import(data.csv_bytes, service.parse_statement(data.csv_bytes), filename,
                                         filename=filename, uploaded_by="staff:operator").id
    window = gui("operator")
    view = show(qtbot, window, "reconciliation")
    qtbot.waitUntil(lambda: view.progress.isVisible(), timeout=WAIT_MS)
    return window, view, run_id


def test_an_importing_run_shows_progress_and_its_cancel_stops_it_on_the_gateway(gui, qtbot):
    """The progress dialog shows a queued import; Cancel, confirmed, asks the gateway; the run reads CANCELLED."""
    from shared.models import StatementImport

    window, view, run_id = open_queued_run(gui, qtbot, 2500, "december.csv")
    assert "december.csv" in view.progress.labelText() and "0 of 2,500 lines" in view.progress.labelText()
    asked = []
    view.confirm_cancel = lambda run: asked.append(run["id"]) or True
    with qtbot.waitSignal(view.loaded, timeout=WAIT_MS, check_params_cb=lambda: view.run["status"] == "CANCELLED"):
        qtbot.mouseClick(view.progress.findChild(QPushButton), Qt.MouseButton.LeftButton)
    assert asked == [run_id] and not view.progress.isVisible()
    assert "cancelled after 0 of 2,500 lines" in view.summary_label.text()
    assert f"Import of run #{run_id} cancelled" in window.message_bar.text()
    assert "cancelled" in view.history.item(0).text()
    with db.connection_context():
        assert StatementImport.get_by_id(run_id).status == "CANCELLED"


def test_cancelling_a_run_that_ended_meanwhile_says_so_and_shows_it_as_it_is(gui, qtbot):
    from shared.models import StatementImport

    window, view, run_id = open_queued_run(gui, qtbot, 2100, "ended.csv")
    with db.connection_context():  # it finishes while the staff member decides
        StatementImport.update(status="DONE", lines=2100).where(StatementImport.id == run_id).execute()
    view.confirm_cancel = lambda run: True
    qtbot.mouseClick(view.progress.findChild(QPushButton), Qt.MouseButton.LeftButton)  # it still shows queued
    qtbot.waitUntil(lambda: "Cancelling the import" in window.message_bar.text(), timeout=WAIT_MS)
    assert "done" in window.message_bar.text()  # the gateway's 409 says what the run is now
    qtbot.waitUntil(lambda: view.run["status"] == "DONE" and not view.progress.isVisible(), timeout=WAIT_MS)


def test_uploading_a_cancelled_statement_again_offers_to_finish_it(gui, qtbot, tmp_path):
    import hashlib

    from bench.recon_data import make_dataset
    from gateway.reconciliation import background, service

    data = make_dataset(2200)
    digest = hashlib.sha256(data.csv_bytes).hexdigest()  # the same file, as the gateway knows it
    with db.connection_context():
        run_id = background.queue_import(data.csv_bytes, service.parse_statement(data.csv_bytes), digest,
                                         filename="resume.csv", uploaded_by="staff:operator").id
        background.cancel(run_id, staff="staff:operator")
    path = tmp_path / "resume.csv"
    path.write_bytes(data.csv_bytes)
    view = show(qtbot, gui("operator"), "reconciliation")
    view.choose_statement = lambda: str(path)
    asked = []
    view.confirm_import = lambda preview: asked.append(preview_text(preview)) or True
    view.upload()
    qtbot.waitUntil(lambda: view.run is not None and view.run["status"] == "DONE", timeout=60_000)
    assert view.run["id"] == run_id and view.run["lines_done"] == 2200
    assert asked == [f"This file's import (run #{run_id}) was cancelled after 0 of 2,200 lines.\n"
                     "Importing it again goes on after the lines it kept."]
