"""Run blocking calls (the API client) on a thread pool and hand the outcome back to the GUI thread by signals.

Only slots connected to these signals touch widgets; the callable itself must never touch Qt widgets.
"""
from __future__ import annotations

from collections.abc import Callable

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class WorkerSignals(QObject):
    """Lives on the GUI thread, so its signals reach GUI slots through queued connections."""

    result = Signal(object)
    error = Signal(object)
    finished = Signal()


class Worker(QRunnable):
    """Calls fn(*args, **kwargs) on a pool thread: ``result`` with its value or ``error`` with the exception,
    then ``finished``."""

    def __init__(self, fn: Callable, *args, **kwargs):
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = WorkerSignals()
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            value = self.fn(*self.args, **self.kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the GUI, never raised in a thread
            self.signals.error.emit(exc)
        else:
            self.signals.result.emit(value)
        finally:
            self.signals.finished.emit()


_running: set[WorkerSignals] = set()  # keeps each signals object alive until its queued signals are delivered


def _guarded(callback: Callable, owner: QObject | None) -> Callable:
    """The callback, skipped once its owner widget is gone (the answer came after the window closed)."""
    if owner is None:
        return callback
    return lambda *args: callback(*args) if shiboken6.isValid(owner) else None


def run_in_pool(fn: Callable, on_result: Callable | None = None, on_error: Callable | None = None, *,
                on_finished: Callable | None = None, pool: QThreadPool | None = None,
                owner: QObject | None = None) -> Worker:
    """Start fn in the pool; the callbacks run later on the GUI thread, in the order result/error, finished,
    and not at all once ``owner`` has been deleted."""
    worker = Worker(fn)
    signals = worker.signals
    for signal, callback in ((signals.result, on_result), (signals.error, on_error),
                             (signals.finished, on_finished)):
        if callback:
            signal.connect(_guarded(callback, owner))
    _running.add(signals)
    signals.finished.connect(lambda: _running.discard(signals))
    (pool or QThreadPool.globalInstance()).start(worker)
    return worker


def active_workers() -> int:
    """How many workers have not delivered ``finished`` yet (tests wait for zero)."""
    return len(_running)
