"""The payments table model without any widget, and the data classes and action rules it shows."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QModelIndex, Qt  # noqa: E402

from admin_app.core.models import (  # noqa: E402
    PRINT,
    REFUND,
    REQUERY,
    RESEND,
    RESOLVE,
    RETRY,
    Page,
    Payment,
    TimelineEntry,
    available_actions,
)
from admin_app.gui.payments_model import (  # noqa: E402
    COL_AMOUNT,
    COL_CREATED,
    COL_FLAGGED,
    COL_ID,
    COL_REFERENCE,
    COL_STATUS,
    HEADERS,
    STATUS_COLOURS,
    PaymentsTableModel,
)

R = Qt.ItemDataRole
TRANSITIONS = {"PROCESSING": ["CANCELLED", "COMPLETED", "EXPIRED", "FAILED"],
               "COMPLETED": ["REFUND_PENDING", "SETTLED"], "FAILED": ["COMPLETED"], "REFUNDED": []}


def payment(pid: int, status: str = "COMPLETED", **kw) -> Payment:
    body = {"id": pid, "reference": f"LP{pid:06d}", "phone": "254712345678", "amount": 1500 + pid, "account": "ACC",
            "status": status, "status_message": f"{status} message", "created_at": "2024-05-01T08:00:00Z",
            "channel": "ussd", "allowed_transitions": TRANSITIONS.get(status, []), **kw}
    return Payment.from_json(body)


class FakeFetcher:
    """Records each request; the test answers it when it likes (as a worker would, later)."""

    def __init__(self):
        self.calls = []

    def __call__(self, cursor, on_page, on_error):
        self.calls.append((cursor, on_page, on_error))

    def answer(self, page: Page) -> None:
        self.calls.pop(0)[1](page)

    def fail(self, exc: BaseException) -> None:
        self.calls.pop(0)[2](exc)


@pytest.fixture
def model(qapp):
    return PaymentsTableModel(FakeFetcher())


def cell(model, row, column, role=R.DisplayRole):
    return model.data(model.index(row, column), role)


def test_shape_headers_and_display(model, qtmodeltester):
    model.set_rows([payment(2, flagged=True, flag_reason="velocity"), payment(1, "FAILED")])
    qtmodeltester.check(model)
    assert (model.rowCount(), model.columnCount()) == (2, len(HEADERS))
    assert model.rowCount(model.index(0, 0)) == 0
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(len(HEADERS))] == list(HEADERS)
    assert model.headerData(0, Qt.Orientation.Vertical) is None
    assert cell(model, 0, COL_ID) == "2" and cell(model, 0, COL_REFERENCE) == "LP000002"
    assert cell(model, 0, COL_AMOUNT) == "1,502" and cell(model, 0, COL_CREATED) == "2024-05-01 11:00:00"
    assert cell(model, 0, COL_FLAGGED) == "⚑" and cell(model, 1, COL_FLAGGED) == ""
    assert cell(model, 0, COL_FLAGGED, R.ToolTipRole) == "velocity"
    assert cell(model, 1, COL_STATUS, R.ToolTipRole) == "FAILED message"
    assert cell(model, 0, COL_STATUS, R.UserRole).id == 2 and model.payment_at(1).id == 1
    assert model.payment_at(5) is None and model.data(QModelIndex()) is None
    assert cell(model, 0, COL_AMOUNT, R.TextAlignmentRole) & int(Qt.AlignmentFlag.AlignRight)
    assert cell(model, 0, COL_REFERENCE, R.TextAlignmentRole) is None


def test_status_colours(model):
    model.set_rows([payment(3, "FAILED"), payment(2, "COMPLETED"), payment(1, "MYSTERY")])
    assert cell(model, 0, COL_STATUS, R.BackgroundRole).color().name() == STATUS_COLOURS["FAILED"][0]
    assert cell(model, 0, COL_STATUS, R.ForegroundRole).color().name() == STATUS_COLOURS["FAILED"][1]
    assert cell(model, 1, COL_STATUS, R.BackgroundRole).color().name() == STATUS_COLOURS["COMPLETED"][0]
    assert cell(model, 2, COL_STATUS, R.BackgroundRole) is None
    assert cell(model, 0, COL_REFERENCE, R.BackgroundRole) is None
    assert set(STATUS_COLOURS) >= {"PENDING", "PROCESSING", "COMPLETED", "SETTLED", "FAILED", "CANCELLED", "EXPIRED",
                                   "REFUND_PENDING", "REFUNDED"}


def test_set_rows_resets_the_model(model, qtbot):
    model.set_rows([payment(1)])
    with qtbot.waitSignals([model.modelAboutToBeReset, model.modelReset], timeout=1000):
        model.set_rows([payment(3), payment(2)], "cursor-1")
    assert [p.id for p in model.rows] == [3, 2] and model.next_cursor == "cursor-1"


def test_fetch_more_appends_the_next_page_through_the_fetcher(model, qtbot):
    fetcher = model.fetcher
    model.set_rows([payment(4), payment(3)], "c1")
    assert model.canFetchMore() and not model.canFetchMore(model.index(0, 0))
    model.fetchMore()
    assert not model.canFetchMore() and fetcher.calls[0][0] == "c1"  # one request at a time
    model.fetchMore()
    assert len(fetcher.calls) == 1
    with qtbot.waitSignals([model.rowsInserted, model.page_loaded], timeout=1000):
        fetcher.answer(Page([payment(2), payment(1)], None))
    assert [p.id for p in model.rows] == [4, 3, 2, 1] and not model.canFetchMore()


def test_a_page_for_an_old_filter_is_dropped(model):
    model.set_rows([payment(9)], "old")
    model.fetchMore()
    model.set_rows([payment(5)], None)  # the filter changed while the page was on its way
    model.fetcher.answer(Page([payment(8)], "older"))
    assert [p.id for p in model.rows] == [5] and model.next_cursor is None


def test_a_failed_fetch_is_reported_and_can_be_tried_again(model, qtbot):
    model.set_rows([payment(9)], "c1")
    model.fetchMore()
    with qtbot.waitSignal(model.fetch_failed, timeout=1000) as blocker:
        model.fetcher.fail(RuntimeError("boom"))
    assert str(blocker.args[0]) == "boom" and model.canFetchMore()
    model.fetchMore()
    model.fetcher.answer(Page([], None))
    assert model.rowCount() == 1 and not model.canFetchMore()


def test_update_payment_changes_its_row_in_place(model, qtbot):
    model.set_rows([payment(2, "PROCESSING"), payment(1)])
    with qtbot.waitSignal(model.dataChanged, timeout=1000) as blocker:
        model.update_payment(payment(2, "COMPLETED"))
    assert blocker.args[0].row() == 0 and cell(model, 0, COL_STATUS) == "COMPLETED"
    model.update_payment(payment(77, "FAILED"))  # not listed: nothing happens
    assert model.rowCount() == 2


def test_no_fetcher_means_nothing_more(qapp):
    model = PaymentsTableModel()
    model.set_rows([payment(1)], "c1")
    assert not model.canFetchMore()
    model.fetchMore()


@pytest.mark.parametrize("status,role,expected", [
    ("PROCESSING", "viewer", set()),
    ("PROCESSING", "operator", {REQUERY}),
    ("PROCESSING", "admin", {REQUERY, RESOLVE}),
    ("COMPLETED", "operator", {RESEND, PRINT}),
    ("COMPLETED", "admin", {RESEND, PRINT, REFUND, RESOLVE}),
    ("COMPLETED", "viewer", {PRINT}),
    ("FAILED", "operator", {REQUERY, RETRY}),
    ("FAILED", "admin", {REQUERY, RETRY, RESOLVE}),
    ("REFUNDED", "admin", {PRINT}),
    ("COMPLETED", "nobody", set()),
])
def test_actions_follow_role_and_state(status, role, expected):
    assert available_actions(payment(1, status), role) == expected


def test_nothing_left_to_refund_means_no_refund():
    assert REFUND not in available_actions(payment(1, "COMPLETED", amount=500, refunded_amount=500), "admin")
    assert payment(1, "COMPLETED", amount=500, refunded_amount=200).refundable == 300


def test_timeline_entries_keep_their_payload():
    entry = TimelineEntry.from_json({"at": "2024-05-01T08:00:01Z", "type": "callback", "actor": "daraja.stk",
                                     "summary": "daraja.stk callback (applied)", "body": {"Body": {"x": 1}}})
    assert entry.at.isoformat() == "2024-05-01T08:00:01+00:00" and entry.details == {"body": {"Body": {"x": 1}}}
    assert entry.pretty().splitlines()[:3] == ["{", '  "body": {', '    "Body": {']


def test_a_disabled_action_says_why():
    from admin_app.core.models import REFUND, REQUERY, RESOLVE, why_not

    paid = Payment.from_json({"id": 1, "reference": "LP1", "phone": "254712***678", "amount": 100, "account": "A",
                              "status": "COMPLETED", "refunded_amount": 100, "allowed_transitions": ["SETTLED"]})
    assert why_not(REFUND, paid, "viewer") == "Needs the admin role (you are viewer)."
    assert why_not(REFUND, paid, "admin") == "Nothing is left to refund."
    assert why_not(REQUERY, paid, "operator") == "Not for a completed payment."
    assert why_not(RESOLVE, paid, "admin") == ""
    assert why_not(RESOLVE, None, "admin") == "Open a payment first."


def test_a_linked_attempts_status_follows_without_touching_the_rest():
    from admin_app.core.models import Attempt

    p = Payment.from_json({"id": 1, "reference": "LP1", "phone": "254712345678", "amount": 55, "account": "A",
                           "status": "FAILED", "retried_as": [{"id": 2, "reference": "LP2", "status": "PROCESSING"}]})
    assert p.linked_attempt_ids() == {2}
    done = p.with_attempt_status(2, "COMPLETED")
    assert done.retried_as == (Attempt(2, "LP2", "COMPLETED"),) and done.status == "FAILED"
    assert done.with_attempt_status(2, "COMPLETED") is None  # already says so
    assert p.with_attempt_status(7, "COMPLETED") is None  # not linked


def test_a_timeline_story_is_broken_onto_lines_that_fit_its_column():
    """The payment detail's "What happened" cell: QTreeWidget's own wrap does not grow a row, so a refund
    reason was cut with "..."; the words are broken onto lines that fit, by the font's measure."""
    from admin_app.core.words import wrap_to_width

    story = "Refund of KES 200 requested by ops1: customer asked for it back"
    lines = wrap_to_width(story, len, 20).split("\n")  # one pixel per character, for the test
    assert " ".join(lines) == story and all(len(line) <= 20 for line in lines) and len(lines) == 4
    assert wrap_to_width("Supercalifragilistic word", len, 5) == "Supercalifragilistic\nword"  # too wide: own line
    assert wrap_to_width("", len, 10) == "" and wrap_to_width("short", len, 10) == "short"
