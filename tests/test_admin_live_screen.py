"""LiveScreen, the base of the Dashboard, Alerts, Notifications and Jobs screens: merged refreshes, errors to
the message bar, and feed-driven reloads (now when shown, else on the next show), with workers run by hand."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QObject, Signal  # noqa: E402

from admin_app.gui import ScreenContext, live_screen  # noqa: E402
from admin_app.gui.live_screen import LiveScreen  # noqa: E402


class Feed(QObject):
    changed = Signal(list)


class ByHand(ScreenContext):
    """Keeps each worker's (fn, on_result, on_error, on_finished) for the test to finish."""

    def run(self, fn, on_result=None, on_error=None, on_finished=None, *, owner=None):
        self.calls.append((fn, on_result, on_error, on_finished))


class Counter(LiveScreen):
    key, title, error_context = "counter", "Counter", "Loading the counter"
    feed_types = frozenset({"alert"})

    def __init__(self, ctx, parent=None):
        self.shown: list = []
        super().__init__(ctx, parent)

    def loader(self):
        return lambda: "fresh"

    def show_data(self, data) -> None:
        self.shown.append(data)


@pytest.fixture
def screen(qtbot, monkeypatch):
    feed = Feed()
    monkeypatch.setattr(live_screen, "feed_for", lambda client: feed)
    errors = []
    ctx = ByHand(client=SimpleNamespace(role="viewer"), info=lambda text: None,
                 error=lambda exc, doing: errors.append((exc, doing)))
    ctx.calls = []
    widget = Counter(ctx)
    qtbot.addWidget(widget)
    widget.feed, widget.errors = feed, errors
    return widget


def finish(screen, value=None, error=None):
    """The oldest worker returns ``value`` (or raises ``error``), then finishes."""
    fn, on_result, on_error, on_finished = screen.ctx.calls.pop(0)
    on_error(error) if error else on_result(value if value is not None else fn())
    on_finished()


def test_refreshes_asked_while_busy_become_one_more_load(screen, qtbot):
    screen.refresh()
    screen.refresh()
    screen.refresh()
    assert len(screen.ctx.calls) == 1
    with qtbot.waitSignal(screen.loaded):
        finish(screen)
    assert screen.shown == ["fresh"] and len(screen.ctx.calls) == 1  # the merged one
    finish(screen)
    assert screen.shown == ["fresh", "fresh"] and screen.ctx.calls == []


def test_a_failure_goes_to_the_message_bar_and_still_says_loaded(screen, qtbot):
    screen.refresh()
    boom = RuntimeError("gateway down")
    with qtbot.waitSignal(screen.loaded):
        finish(screen, error=boom)
    assert screen.errors == [(boom, "Loading the counter")] and screen.last_error is boom and screen.shown == []
    screen.refresh()
    finish(screen)
    assert screen.last_error is None


def test_feed_items_reload_now_when_shown_else_on_the_next_show(screen, qtbot):
    screen.feed_interval_ms = 0
    screen.feed.changed.emit([{"type": "notification"}])
    screen.feed.changed.emit([{"type": "alert"}])  # hidden: remembered, not loaded
    assert screen.ctx.calls == []
    screen.show()
    qtbot.waitExposed(screen)
    assert len(screen.ctx.calls) == 1
    finish(screen)
    screen.feed.changed.emit([{"type": "payment_event"}, {"type": "alert"}])
    assert len(screen.ctx.calls) == 1


def test_reload_when_hidden_keeps_a_count_fresh_off_screen(screen):
    screen.reload_when_hidden = True
    screen.feed.changed.emit([{"type": "alert"}])
    assert len(screen.ctx.calls) == 1 and not screen.isVisible()


def test_a_busy_feed_reloads_at_most_once_per_interval(screen, qtbot):
    """Twenty feed pages in a burst: one reload now, one more after the interval, none in between."""
    screen.feed_interval_ms = 300
    screen.show()
    qtbot.waitExposed(screen)
    screen.refresh()
    finish(screen)  # a load just now
    for _ in range(20):
        screen.feed.changed.emit([{"type": "alert"}])
    assert screen.ctx.calls == []  # within the interval of the last load: waits
    qtbot.waitUntil(lambda: len(screen.ctx.calls) == 1, timeout=2000)
    finish(screen)
    assert screen.ctx.calls == []


def test_date_pickers_open_on_nairobis_today_not_the_workstations(qtbot, monkeypatch):
    """At 21:30 UTC it is already the next day in Nairobi: the dashboard's period and the payments filter end
    on Nairobi's date, the API's day, or a payment made at 00:30 EAT falls outside "the last 7 days". The
    clock is set days ahead, so the workstation's own date can never agree by chance."""
    from datetime import datetime, timedelta, timezone

    from admin_app.core import dashboard_data
    from admin_app.gui import dashboard, payments_view

    late = (datetime.now(timezone.utc) + timedelta(days=3)).replace(hour=21, minute=30)
    clock = type("Clock", (datetime,), {"now": staticmethod(lambda tz=None: late)})
    monkeypatch.setattr(dashboard_data, "datetime", clock)
    feed = Feed()
    monkeypatch.setattr(live_screen, "feed_for", lambda client: feed)
    monkeypatch.setattr(payments_view, "feed_for", lambda client: feed)
    ctx = ByHand(client=SimpleNamespace(role="viewer"), info=lambda text: None, error=lambda exc, doing: None)
    ctx.calls = []
    dash, payments = dashboard.Dashboard(ctx), payments_view.PaymentsView(ctx)
    for widget in (dash, payments):
        qtbot.addWidget(widget)
    nairobi_day = (late + timedelta(hours=3)).date()
    assert dash.period() == (nairobi_day - timedelta(days=6), nairobi_day)
    assert payments.to_date.date().toPython() == nairobi_day
