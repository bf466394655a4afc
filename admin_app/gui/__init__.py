"""The thin PySide6 layer over ``admin_app.core``, and the contract every main screen follows.

A screen is a ``Screen`` subclass with ``key``, ``title`` and ``min_role``; it gets a ``ScreenContext``
(the client, a way to run work off the GUI thread, and the shell's message bar) and emits ``loaded``
after each ``refresh()`` has finished, whether its data came in or not. Register it with one line in
``admin_app.gui.main_window.SCREENS``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtWidgets import QWidget

from admin_app.core.client import ApiClient

from .workers import Worker, run_in_pool


@dataclass
class ScreenContext:
    """What the shell lends a screen: the logged-in client, a worker pool and the message bar."""

    client: ApiClient
    info: Callable[[str], None]
    error: Callable[..., None]  # (exc, doing, action=False)
    pool: QThreadPool | None = None

    @property
    def role(self) -> str:
        return self.client.role

    def action_failed(self, exc: BaseException, doing: str) -> None:
        """An action (a write) failed: like ``error``, and a lost connection also says in the message bar that
        the action was not done, instead of only showing the connection banner."""
        self.error(exc, doing, True)

    def run(self, fn: Callable, on_result: Callable | None = None, on_error: Callable | None = None,
            on_finished: Callable | None = None, *, owner: QObject | None = None) -> Worker:
        """fn on the pool; callbacks on the GUI thread, skipped if ``owner`` (the asking widget) is gone."""
        return run_in_pool(fn, on_result, on_error, on_finished=on_finished, pool=self.pool, owner=owner)


class Screen(QWidget):
    """Base of the main screens; the shell's shortcuts call the hooks below on the visible screen."""

    key = ""
    title = ""
    min_role = "viewer"
    loaded = Signal()  # after every refresh(), success or not (--screenshot waits for it)

    def __init__(self, ctx: ScreenContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.last_error: BaseException | None = None

    def refresh(self) -> None:
        """Reload this screen's data in a worker, then emit ``loaded``."""
        self.loaded.emit()

    def focus_search(self) -> None:
        """Ctrl+F."""

    def requery(self) -> None:
        """Ctrl+R: ask M-Pesa about the payment in focus, where the screen has one."""
        self.ctx.info("Re-query works on a payment: open one on the Payments screen.")

    def print_receipt(self) -> None:
        """Ctrl+P: print the receipt of the payment in focus, where the screen has one."""
        self.ctx.info("Printing works on a payment: open one on the Payments screen.")
