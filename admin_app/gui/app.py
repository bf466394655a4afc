"""Start the desktop app: options, QApplication, login (window or --username/--password), and --screenshot."""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication

from admin_app.core.client import ApiClient, ClientError
from admin_app.core.settings import DEFAULT_GATEWAY_URL, AppSettings

from .login import LoginDialog, QtSettingsStore, sign_in
from .main_window import MainWindow
from .workers import run_in_pool

SCREENSHOT_SIZE = (1366, 768)
SCREEN_TIMEOUT_MS = 60_000


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_admin.py", description="Lipa back-office desktop app.")
    parser.add_argument("--gateway-url", help=f"the gateway's base URL (default {DEFAULT_GATEWAY_URL}; the login "
                                              "window offers the last one used)")
    parser.add_argument("--username", help="sign in as this staff member (with --password: no login window)")
    parser.add_argument("--password", help="the staff member's password")
    parser.add_argument("--screenshot", metavar="DIR", help="sign in, open each screen with its data, save one "
                                                             "PNG per screen into DIR, and exit")
    return parser.parse_args(argv)


class Launcher(QObject):
    """Keeps the login dialog and the main window alive and moves from one to the other."""

    def __init__(self, settings: AppSettings, gateway_url: str | None):
        super().__init__()
        self.settings, self.gateway_url = settings, gateway_url
        self.window: MainWindow | None = None
        self.dialog: LoginDialog | None = None

    def show_login(self, username: str = "", message: str = "") -> None:
        self.dialog = LoginDialog(self.settings)
        if self.gateway_url:
            self.dialog.url_edit.setText(self.gateway_url)
        if username:
            self.dialog.username_edit.setText(username)
        self.dialog.message_label.setText(message)
        self.dialog.logged_in.connect(self.open_window)
        self.dialog.rejected.connect(QApplication.quit)
        self.dialog.show()

    def sign_in_directly(self, username: str, password: str) -> None:
        """--username/--password: sign in in a worker; a refusal falls back to the login window."""
        url = self.gateway_url or DEFAULT_GATEWAY_URL
        run_in_pool(lambda: sign_in(ApiClient, url, username, password), self.open_window,
                    lambda exc: self.show_login(username, str(exc)))

    def open_window(self, client: ApiClient) -> None:
        self.window = MainWindow(client)
        self.window.session_ended.connect(lambda why: self.session_ended(client.username, why))
        self.window.start()

    def session_ended(self, username: str, why: str) -> None:
        """The gateway no longer takes the token: close the window and offer the sign-in window again,
        the username filled in (not "restart the app")."""
        window, self.window = self.window, None
        self.show_login(username, why)  # first: closing the last window would quit the app
        if window is not None:
            window.close()
            window.deleteLater()


class ScreenshotRun(QObject):
    """Shows each screen, waits for its ``loaded`` signal, grabs the window into DIR; ``done`` with the exit code."""

    done = Signal(int)

    def __init__(self, window: MainWindow, out_dir: Path):
        super().__init__()
        self.window, self.out_dir = window, out_dir
        self.index, self.failed = -1, False
        self.timer = QTimer(self, singleShot=True, interval=SCREEN_TIMEOUT_MS)
        self.timer.timeout.connect(self._timed_out)

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.window.resize(*SCREENSHOT_SIZE)
        self.window.show()
        self._next()

    def _next(self) -> None:
        self.index += 1
        if self.index >= len(self.window.screens):
            self.done.emit(1 if self.failed or not self.window.screens else 0)
            return
        screen = self.window.screens[self.index]
        screen.loaded.connect(self._loaded)
        self.timer.start()
        self.window.show_screen(self.index)

    def _loaded(self) -> None:
        screen = self.window.screens[self.index]
        screen.loaded.disconnect(self._loaded)
        self.timer.stop()
        if screen.last_error is not None:
            self._fail(f"{screen.title}: {screen.last_error}")
        QTimer.singleShot(0, self._capture)  # let the view lay out its new rows first

    def _timed_out(self) -> None:
        screen = self.window.screens[self.index]
        try:
            screen.loaded.disconnect(self._loaded)
        except (RuntimeError, TypeError):  # the screen had loaded: it was the payment detail that timed out
            self._fail(f"{screen.title}: the payment detail did not load within {SCREEN_TIMEOUT_MS // 1000} s")
            self._next()
            return
        self._fail(f"{screen.title}: no data within {SCREEN_TIMEOUT_MS // 1000} s")
        self._capture()

    def _capture(self, suffix: str = "") -> None:
        screen = self.window.screens[self.index]
        path = self.out_dir / f"{self.index + 1:02d}-{screen.key}{suffix}.png"
        if self.window.grab().save(str(path), "PNG"):
            print(path)
        else:
            self._fail(f"could not write {path}")
        if not suffix and getattr(screen, "detail", None) is not None and self._open_detail(screen):
            return  # the payment detail follows, with its own picture
        self._next()

    def _open_detail(self, screen) -> bool:
        """Open the most telling payment (one with a refund, else a paid one) beside the list: the detail's
        refunds and timeline get their own screenshot."""
        rows = screen.model.rows
        chosen = next((p for p in rows if p.refunded_amount or p.status in ("REFUNDED", "REFUND_PENDING")), None) \
            or next((p for p in rows if p.status in ("COMPLETED", "SETTLED")), None)
        if chosen is None:
            return False
        screen.detail.loaded.connect(self._detail_loaded, Qt.ConnectionType.SingleShotConnection)
        self.timer.start()
        screen.table.selectRow(rows.index(chosen))
        screen.open_payment(chosen)
        return True

    def _detail_loaded(self) -> None:
        self.timer.stop()
        QTimer.singleShot(0, lambda: self._capture("-detail"))

    def _fail(self, why: str) -> None:
        self.failed = True
        print(f"run_admin.py --screenshot: {why}", file=sys.stderr)


def screenshot(app: QApplication, args: argparse.Namespace, url: str) -> int:
    """--screenshot DIR: 0 when every screen loaded and was saved."""
    client = ApiClient(url)
    try:
        client.login(args.username, args.password)  # no window exists yet: nothing to block
    except ClientError as exc:
        print(f"run_admin.py: cannot sign in at {url}: {exc}", file=sys.stderr)
        return 1
    window = MainWindow(client)
    run = ScreenshotRun(window, Path(args.screenshot))
    run.done.connect(app.exit)
    QTimer.singleShot(0, run.start)
    return app.exec()


def _quit_on_signals(app: QApplication) -> QTimer:
    """Ctrl+C and SIGTERM close the app; a short timer lets Python see the signal while Qt waits."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: app.quit())
    timer = QTimer(app, interval=250)
    timer.timeout.connect(lambda: None)
    timer.start()
    return timer


def main(argv: list[str] | None = None) -> int:
    """The entry point of run_admin.py; the process exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.screenshot and not (args.username and args.password):
        print("run_admin.py: --screenshot needs --username and --password", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(["Lipa Admin"])
    app.setOrganizationName("Lipa")
    app.setApplicationName("Lipa Admin")
    _quit_on_signals(app)
    if args.screenshot:
        return screenshot(app, args, (args.gateway_url or DEFAULT_GATEWAY_URL).rstrip("/"))
    launcher = Launcher(AppSettings(QtSettingsStore()), args.gateway_url)
    if args.username and args.password:
        launcher.sign_in_directly(args.username, args.password)
    else:
        launcher.show_login(args.username or "")
    return app.exec()
