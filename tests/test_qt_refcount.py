"""Qt calls that hand ``None`` back to Python must not lose references to ``None``.

PySide6 6.12.0 on Python 3.11 drops one reference to ``None`` per such call; after some 30,000 of them the
process aborts with "Fatal Python error: none_dealloc" (the desktop app vanished after ~12 minutes of use).
setup.cfg pins a release that does not. The calls run in a child process (this file run as a script), so
an abort fails the test instead of killing pytest. Each kind of call is warmed up once (the first calls
fill caches that keep a few references for good), then measured over 100,000 calls.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CALLS = 100_000
WARM_UP = 1_000
# Incidental references (interned caches, the interpreter's own bookkeeping) may move the count by a few; a
# leak moves it by one per call.
SLACK = 50


def _probes() -> tuple[dict, tuple]:
    """Each probe is a no-argument Qt call that returns None to Python, on the app's own kinds of objects;
    the objects come back too, for the caller to keep alive (an index does not hold its model)."""
    from PySide6.QtCore import QSortFilterProxyModel, Qt
    from PySide6.QtWidgets import QLabel

    from admin_app.core.models import Payment
    from admin_app.gui.payments_model import COL_RECEIPT, PaymentsTableModel

    model = PaymentsTableModel()
    rows = [Payment.from_json({"id": n, "reference": f"LP{n:06d}", "phone": "254712345678", "amount": n,
                              "account": "A", "status": "PENDING", "channel": "ussd",
                              "created_at": "2026-12-02T07:18:06", "updated_at": "2026-12-02T07:18:06"})
            for n in range(1, 41)]
    model.set_rows(rows)
    small = PaymentsTableModel()  # sorting calls data() per row: two rows keep 100k sorts quick
    small.set_rows(rows[:2])
    proxy = QSortFilterProxyModel()
    proxy.setSourceModel(small)
    label = QLabel()
    empty = model.index(0, COL_RECEIPT)  # no status message: the model answers None for the tooltip
    order = [Qt.AscendingOrder, Qt.DescendingOrder]
    counter = iter(range(10**9))
    probes = {
        "QModelIndex.data()": lambda: empty.data(Qt.ToolTipRole),
        "QLabel.setText()": lambda: label.setText("KES 1,000"),
        "QWidget.update()": label.update,
        "proxy sort": lambda: proxy.sort(1, order[next(counter) % 2]),
    }
    return probes, (model, small, proxy, label)


def measure() -> dict[str, int]:
    """References to None lost per kind of call (negative: gained)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])  # noqa: F841 - widgets need it alive
    lost = {}
    probes, _alive = _probes()
    for name, call in probes.items():
        for _ in range(WARM_UP):
            call()
        before = sys.getrefcount(None)
        for _ in range(CALLS):
            call()
        lost[name] = before - sys.getrefcount(None)
    return lost


@pytest.mark.server  # a child process, for 10 s: the full suite runs it
def test_100k_qt_calls_returning_none_lose_no_references_to_none():
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": path}
    done = subprocess.run([sys.executable, __file__], cwd=root, env=env, capture_output=True, text=True,
                          timeout=110)
    assert done.returncode == 0, f"the Qt probe died (exit {done.returncode}):\n{done.stderr[-3000:]}"
    lost = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(lost) == {"QModelIndex.data()", "QLabel.setText()", "QWidget.update()", "proxy sort"}
    leaking = {name: n for name, n in lost.items() if abs(n) > SLACK}
    assert not leaking, f"references to None lost over {CALLS:,} calls each: {leaking}"


if __name__ == "__main__":
    print(json.dumps(measure()))
