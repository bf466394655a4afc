"""The desktop app's remaining day-long-use findings (issue 14): retry chains, offline actions, cancelling
long work, the live feed's 429 and small screen rules; against a live gateway, offscreen, GUI stalls metered."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from admin_app.core.client import ApiClient, ApiError  # noqa: E402
from admin_app.core.models import RETRY  # noqa: E402
from tests.factories import seed  # noqa: E402
from tests.system import test_admin_gui as base  # noqa: E402
from tests.system.test_admin_gui import WAIT_MS, open_row, payments_of  # noqa: E402

pytestmark = pytest.mark.server
gui, meter, staff = base.gui, base.meter, base.staff  # the same fixtures: a live gateway and the GapMeter


def test_a_retried_payment_links_its_new_attempt_and_cannot_be_retried_again(gui, qtbot):
    seed(status="FAILED", checkout_request_id="ws_f")
    window = gui("operator")
    view = payments_of(window)
    qtbot.waitUntil(lambda: view.model.rowCount() == 1, timeout=WAIT_MS)
    open_row(qtbot, view, 0)
    detail = view.detail
    qtbot.waitUntil(lambda: detail.detail is not None and detail.buttons[RETRY].isEnabled(), timeout=WAIT_MS)
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
