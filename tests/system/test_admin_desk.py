"""The desktop app's remaining day-long-use findings (issue 14): retry chains, offline actions, cancelling
long work, the live feed's 429 and small screen rules; against a live gateway, offscreen, GUI stalls metered."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import requests  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QPushButton  # noqa: E402

from admin_app.core.client import ApiClient, ApiError, ConnectionLost, not_done_text  # noqa: E402
from admin_app.core.models import RETRY  # noqa: E402
from admin_app.gui import live_feed  # noqa: E402
from admin_app.gui.main_window import MainWindow  # noqa: E402
from admin_app.gui.payments_view import PaymentsView  # noqa: E402
from admin_app.gui.workers import active_workers  # noqa: E402
from shared.db import db  # noqa: E402
from shared.models import Payment as PaymentRow  # noqa: E402
from tests.conftest import CALLBACK_TOKEN  # noqa: E402
from tests.factories import SEED_PHONE, add_events, add_staff, paid_body, seed  # noqa: E402
from tests.helpers import free_port  # noqa: E402
from tests.system import test_admin_gui as base  # noqa: E402
from tests.system.test_admin_gui import WAIT_MS, open_row, payments_of  # noqa: E402
from tests.system.test_admin_screens import off_thread  # noqa: E402

pytestmark = pytest.mark.server
gui, meter, staff = base.gui, base.meter, base.staff  # the same fixtures: a live gateway and the GapMeter


def open_failed_payment(gui, qtbot, checkout: str, **values):
    """An operator's window with one FAILED payment open in the detail, its Retry enabled."""
    seed(status="FAILED", checkout_request_id=checkout, **values)
    window = gui("operator")
    view = payments_of(window)
    qtbot.waitUntil(lambda: view.model.rowCount() == 1, timeout=WAIT_MS)
    open_row(qtbot, view, 0)
    detail = view.detail
    qtbot.waitUntil(lambda: detail.detail is not None and detail.buttons[RETRY].isEnabled(), timeout=WAIT_MS)
    return window, view, detail


def test_a_retried_payment_links_its_new_attempt_and_cannot_be_retried_again(gui, qtbot):
    window, view, detail = open_failed_payment(gui, qtbot, "ws_f")
    old_id = detail.payment.id
    detail.confirm = lambda title, text: True
    qtbot.mouseClick(detail.buttons[RETRY], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "started as" in window.message_bar.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(detail.payment.retried_as), timeout=WAIT_MS)
    fresh = detail.payment.retried_as[0]
    assert not detail.buttons[RETRY].isEnabled()
    assert detail.buttons[RETRY].toolTip() == f"Already retried as {fresh.reference}: open that attempt to retry again."
    assert detail.attempts_label.isVisible()
    assert f"Retried as <a href='payment:{fresh.id}'>" in detail.attempts_label.text()
    with qtbot.waitSignal(detail.attempt_opened, timeout=WAIT_MS):
        detail.attempts_label.linkActivated.emit(f"payment:{fresh.id}")  # the user clicks the link
    assert detail.payment.id == fresh.id and detail.payment.retry_of_attempt.id == old_id
    assert "Retry of <a href='payment:" in detail.attempts_label.text()
    qtbot.waitUntil(lambda: view.model.rowCount() == 2, timeout=WAIT_MS)  # the new attempt is listed


def checkout_of(payment_id: int) -> str:
    with db.connection_context():
        return PaymentRow.get_by_id(payment_id).checkout_request_id


def test_the_retried_as_label_follows_the_new_attempt_from_the_feed(gui, live_process, qtbot):
    """KES 55 makes the simulator send no callback, so the new attempt stays PROCESSING until the test's own
    M-Pesa callback pays it; "Retried as … (processing)" then turns "(completed)" without reopening."""
    window, view, detail = open_failed_payment(gui, qtbot, "ws_l", amount=55)
    detail.confirm = lambda title, text: True
    qtbot.mouseClick(detail.buttons[RETRY], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(detail.payment.retried_as), timeout=WAIT_MS)
    fresh = detail.payment.retried_as[0]
    assert fresh.status in ("PENDING", "PROCESSING")  # the push goes out in the background
    qtbot.waitUntil(lambda: f"{fresh.reference}</a> (processing)" in detail.attempts_label.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: active_workers() == 0, timeout=WAIT_MS)
    checkout = off_thread(qtbot, lambda: checkout_of(fresh.id))
    reads = []
    real_payment = window.client.payment
    window.client.payment = lambda pid: reads.append(pid) or real_payment(pid)
    body = paid_body(amount=55, receipt="QRETRY55", phone=int(SEED_PHONE), checkout=checkout)
    url = f"{live_process.url}/mpesa/stk/callback/{CALLBACK_TOKEN}"
    answer = off_thread(qtbot, lambda: requests.post(url, json=body, timeout=10))
    assert answer.status_code == 200
    qtbot.waitUntil(lambda: f"{fresh.reference}</a> (completed)" in detail.attempts_label.text(), timeout=WAIT_MS)
    assert detail.payment.retried_as[0].status == "COMPLETED" and fresh.id not in reads  # the feed, not a read


def test_the_gateway_refuses_a_second_retry_of_the_same_payment(live_process, staff):
    payment_id = seed(status="EXPIRED")[0]
    client = ApiClient(live_process.url)
    client.login("operator", staff["operator"])
    fresh = client.retry(payment_id)
    with pytest.raises(ApiError) as caught:
        client.retry(payment_id)
    assert (caught.value.status, caught.value.code) == (409, "already_retried")
    assert fresh.reference in caught.value.message
    attempts = client.get(f"/api/v1/payments/{payment_id}")["attempts"]
    assert attempts["retried_as"][0]["id"] == fresh.id and attempts["retry_of"] is None


def test_an_action_taken_offline_says_not_sent_and_nothing_is_pretended_done(gui, qtbot):
    window, view, detail = open_failed_payment(gui, qtbot, "ws_o")
    online = window.client.base_url
    window.client.base_url, window.client.backoff = f"http://127.0.0.1:{free_port()}", 0.01
    detail.confirm = lambda title, text: True
    qtbot.mouseClick(detail.buttons[RETRY], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.message_bar.level == "error" and "Not sent" in window.message_bar.text(),
                    timeout=WAIT_MS)
    text = window.message_bar.text()
    assert text.startswith("Not sent: Retry of LPT000001 — Cannot reach the gateway") and "Nothing was done" in text
    assert window.connection_banner.isVisible() and "started as" not in text
    qtbot.waitUntil(lambda: active_workers() == 0, timeout=WAIT_MS)
    assert detail.buttons[RETRY].isEnabled()  # the staff member can try again
    window.client.base_url = online
    assert window.client.payment(detail.payment.id).payment.retried_as == ()  # really nothing was done


def test_a_connection_broken_after_sending_never_says_not_sent():
    text = not_done_text(ConnectionLost("Cannot reach the gateway (ReadTimeout).", unsent=False), "Refund of LP1")
    assert text.startswith("Refund of LP1 may not have been done") and "Check the payment" in text


HOLDER = """
import os, sys, time, requests
url, token, stop = sys.argv[1], sys.argv[2], sys.argv[3]
session = requests.Session()
while not os.path.exists(stop):  # keeps the token's one long-poll place taken: 25 s a poll, so no gaps
    answer = session.get(url + "/api/v1/events", params={"after": "now", "wait": 25},
                         headers={"Authorization": "Bearer " + token}, timeout=30)
    if answer.status_code == 429:  # the app's feed holds the place this instant: take it back right after
        time.sleep(0.05)
"""


@pytest.fixture
def one_longpoll_gateway(sim, config):
    """A gateway of its own where a token may hold one long-poll (LIPA_LONGPOLL_PER_PRINCIPAL=1)."""
    from tests.conftest import gateway_process_for

    yield from gateway_process_for(sim, config, LIPA_LONGPOLL_PER_PRINCIPAL="1")


def test_the_live_feed_waits_out_a_429_and_says_so(one_longpoll_gateway, qtbot, meter, monkeypatch, tmp_path):
    """One holder process long-polls on the app's own token, 25 s at a time, so the token's single place is
    taken all the time the feed asks: the feed gets 429, says so, waits Retry-After (never sooner), and is back
    once the holder stops (told by a file, its poll ended by a new event). The holder runs in another process,
    so its threads never take the GIL from the GUI thread being metered."""
    monkeypatch.setattr(live_feed, "WAIT_S", 1.0)  # short long-polls, so the feed asks again soon
    url = one_longpoll_gateway.url
    staff = add_staff()
    payment_id = seed()[0]
    client = ApiClient(url)
    client.login("viewer", staff["viewer"])
    stop = tmp_path / "stop-holding"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, client.session_info.token, str(stop)])
    probe = ApiClient(url)
    probe.session_info = client.session_info
    try:
        wait_until_refused(probe)  # the holder has the place before the window opens
        calls, real_events = [], client.events

        def events(*args, **kwargs):
            try:
                page = real_events(*args, **kwargs)
            except ApiError as exc:
                calls.append((time.monotonic(), exc.status))
                raise
            calls.append((time.monotonic(), 200))
            return page

        client.events = events
        window = MainWindow(client)
        qtbot.addWidget(window)
        window.start()
        qtbot.waitExposed(window)
        meter.start()
        qtbot.waitUntil(lambda: window.feed_label.text() != "", timeout=WAIT_MS)
        assert window.feed_label.text() == "Live updates paused: the gateway asked to wait; resuming in 2 s."
        refused = next(at for at, status in calls if status == 429)
        qtbot.waitUntil(lambda: any(at > refused for at, _ in calls), timeout=WAIT_MS)
        assert next(at for at, _ in calls if at > refused) - refused >= 2.0  # waited Retry-After, never sooner
        stop.touch()
        off_thread(qtbot, lambda: add_events(payment_id))  # news on the feed: the holder's poll ends now
        qtbot.waitUntil(lambda: holder.poll() is not None, timeout=WAIT_MS)  # never a blocking wait
        since = len(calls)
        qtbot.waitUntil(lambda: any(status == 200 for _, status in calls[since:]), timeout=WAIT_MS)  # back
        qtbot.waitUntil(lambda: window.feed_label.text() == "", timeout=WAIT_MS)
        window.close()
        qtbot.waitUntil(lambda: active_workers() == 0, timeout=WAIT_MS)
    finally:
        stop.touch()
        if holder.poll() is None:
            holder.terminate()
        holder.wait(10)


def wait_until_refused(probe: ApiClient) -> None:
    """Short long-polls on the holder's token until one is refused (429): the holder holds the place."""
    for _ in range(200):
        try:
            probe.events("now", wait=0.2)
        except ApiError as exc:
            assert exc.status == 429, exc
            return
    raise AssertionError("the holder never took the token's long-poll place")


def test_the_date_filter_error_clears_when_the_dates_are_valid_again(gui, qtbot):
    seed(2)
    window = gui("viewer")
    view = payments_of(window)
    qtbot.waitUntil(lambda: view.model.rowCount() == 2, timeout=WAIT_MS)
    with qtbot.waitSignal(view.loaded, timeout=WAIT_MS):
        view.dates_check.setChecked(True)
    today = view.to_date.date()
    view.from_date.setDate(today.addDays(3))
    with qtbot.waitSignal(view.loaded, timeout=WAIT_MS):
        view.from_date.editingFinished.emit()
    assert view.dates_error.text().startswith("From (") and "is after To" in view.dates_error.text()
    assert window.message_bar.level != "error" or not window.message_bar.isVisible()
    view.from_date.setDate(today.addDays(-1))
    with qtbot.waitSignal(view.loaded, timeout=WAIT_MS):
        view.from_date.editingFinished.emit()
    assert view.dates_error.text() == "" and view.model.rowCount() == 2
    assert not (window.message_bar.isVisible() and window.message_bar.level == "error")


def test_a_viewer_is_never_offered_a_statement_upload(gui, qtbot):
    window = gui("viewer")
    screen = window.screen("reconciliation")
    with qtbot.waitSignal(screen.loaded, timeout=WAIT_MS):
        window.show_screen(window.screens.index(screen))
    qtbot.waitUntil(lambda: active_workers() == 0, timeout=WAIT_MS)
    asked = []
    screen.choose_statement = lambda: asked.append(1) or ""
    qtbot.keyClick(screen, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
    assert not screen.upload_button.isVisible() and asked == []
    assert "Upload" not in screen.summary_label.text() and "Ctrl+U" not in screen.summary_label.text()


def exporting_window(gui, qtbot, tmp_path, monkeypatch):
    """A viewer's Payments screen over 45 payments, exporting 10 per page to exports/payments.csv (a folder of
    its own: tmp_path holds the test database)."""
    monkeypatch.setattr(PaymentsView, "export_page_size", 10)
    seed(45)
    window = gui("viewer")
    view = payments_of(window)
    qtbot.waitUntil(lambda: view.model.rowCount() == 45, timeout=WAIT_MS)
    path = tmp_path / "exports" / "payments.csv"
    path.parent.mkdir()
    view.choose_export_path = lambda: str(path)
    return window, view, path


def test_csv_export_shows_its_progress_page_by_page(gui, qtbot, tmp_path, monkeypatch):
    window, view, path = exporting_window(gui, qtbot, tmp_path, monkeypatch)
    told = []
    view.export_progress.connect(told.append)
    with qtbot.waitSignal(view.exported, timeout=WAIT_MS) as done:
        qtbot.mouseClick(view.export_button, Qt.MouseButton.LeftButton)
        assert view._export_box is not None and view._export_box.isVisible()
    assert done.args == [45] and told == [10, 20, 30, 40]
    assert len(path.read_text(encoding="utf-8-sig").splitlines()) == 46
    qtbot.waitUntil(lambda: view.export_button.isEnabled() and view._export_box is None, timeout=WAIT_MS)


def test_cancelling_a_csv_export_stops_its_paging_and_leaves_no_file(gui, qtbot, tmp_path, monkeypatch):
    """The third page waits until Cancel is pressed: the export stops there, with no file and no .part left."""
    window, view, path = exporting_window(gui, qtbot, tmp_path, monkeypatch)
    gate, pages, real = threading.Event(), [], window.client.payments

    def paced(filters=None, cursor=None, limit=50):
        if limit == 10:  # the export's pages, not the list's
            pages.append(cursor)
            if len(pages) == 3:
                gate.wait(WAIT_MS / 1000)
        return real(filters, cursor, limit)

    window.client.payments = paced
    with qtbot.waitSignal(view.export_progress, timeout=WAIT_MS, check_params_cb=lambda count: count == 20):
        qtbot.mouseClick(view.export_button, Qt.MouseButton.LeftButton)
    box = view._export_box
    qtbot.waitUntil(lambda: "20 payments written" in box.labelText(), timeout=WAIT_MS)
    with qtbot.waitSignal(view.export_cancelled, timeout=WAIT_MS):
        qtbot.mouseClick(box.findChild(QPushButton), Qt.MouseButton.LeftButton)
        gate.set()
    assert len(pages) == 3 and list(path.parent.iterdir()) == []
    assert window.message_bar.text() == f"Export cancelled: nothing was written to {path}."
    qtbot.waitUntil(lambda: view.export_button.isEnabled() and view._export_box is None, timeout=WAIT_MS)
