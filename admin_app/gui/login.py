"""The login window: gateway URL (remembered with QSettings), username and password; signs in off the GUI thread."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSettings, Qt, QThreadPool, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from admin_app.core.client import ApiClient, ApiError
from admin_app.core.settings import AppSettings

from .workers import run_in_pool


class QtSettingsStore:
    """The settings store of a desktop install: QSettings for organisation "Lipa", application "Lipa Admin"."""

    def __init__(self, qsettings: QSettings | None = None):
        self.qsettings = qsettings or QSettings("Lipa", "Lipa Admin")

    def get(self, key: str, default: str = "") -> str:
        value = self.qsettings.value(key, default)
        return default if value is None else str(value)

    def set(self, key: str, value: str) -> None:
        self.qsettings.setValue(key, value)
        self.qsettings.sync()


def sign_in(client_factory: Callable[[str], ApiClient], url: str, username: str, password: str) -> ApiClient:
    """A client logged in to the gateway at url (runs in a worker)."""
    client = client_factory(url)
    client.login(username, password)
    return client


class LoginDialog(QDialog):
    """Emits ``logged_in`` with the signed-in ApiClient; failures stay in the dialog's message label."""

    logged_in = Signal(object)

    def __init__(self, settings: AppSettings, *, client_factory: Callable[[str], ApiClient] = ApiClient,
                 pool: QThreadPool | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings, self.client_factory, self.pool = settings, client_factory, pool
        self.setWindowTitle("Lipa Admin — sign in")
        self.setMinimumWidth(420)
        self._build_fields()
        self._build_buttons()
        self._build_layout()

    def _build_fields(self) -> None:
        self.url_edit = QLineEdit(self.settings.gateway_url)
        self.username_edit = QLineEdit(self.settings.last_username)
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #8a1111;")
        for edit in (self.url_edit, self.username_edit, self.password_edit):
            edit.returnPressed.connect(self.submit)

    def _build_buttons(self) -> None:
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.sign_in_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.sign_in_button.setText("Sign in")
        self.sign_in_button.setAutoDefault(False)
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setAutoDefault(False)  # focus lands on Cancel while the fields are disabled: Enter must not quit
        cancel.setDefault(False)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Enter signs in (the fields' returnPressed already did) and never presses a default button: while
        signing in the fields are disabled and Enter used to reach Cancel and quit the app. Esc still cancels."""
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if not isinstance(self.focusWidget(), QLineEdit) and self.sign_in_button.isEnabled():
                self.submit()
            event.accept()
            return
        super().keyPressEvent(event)

    def _build_layout(self) -> None:
        form = QFormLayout()
        form.addRow("Gateway URL", self.url_edit)
        form.addRow("Username", self.username_edit)
        form.addRow("Password", self.password_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message_label)
        layout.addWidget(self.buttons)
        (self.password_edit if self.username_edit.text() else self.username_edit).setFocus()

    def submit(self) -> None:
        """Check the fields, then sign in in a worker; the dialog stays responsive meanwhile."""
        url, username = self.url_edit.text().strip(), self.username_edit.text().strip()
        password = self.password_edit.text()
        problem = self._problem(url, username, password)
        if problem:
            self.message_label.setText(problem)
            return
        self._set_busy(True)
        self.message_label.setText("Signing in…")
        factory = self.client_factory
        run_in_pool(lambda: sign_in(factory, url, username, password), self._on_success, self._on_error,
                    pool=self.pool, owner=self)

    @staticmethod
    def _problem(url: str, username: str, password: str) -> str:
        if not url.startswith(("http://", "https://")):
            return "The gateway URL starts with http:// or https://."
        if not username or not password:
            return "Type your username and password."
        return ""

    def _set_busy(self, busy: bool) -> None:
        for widget in (self.url_edit, self.username_edit, self.password_edit, self.sign_in_button):
            widget.setEnabled(not busy)

    def _on_success(self, client: ApiClient) -> None:
        self._set_busy(False)
        self.message_label.setText("")
        self.settings.remember_login(client.base_url, client.username)
        self.logged_in.emit(client)
        self.accept()

    def _on_error(self, exc: BaseException) -> None:
        self._set_busy(False)
        self.message_label.setText(exc.message if isinstance(exc, ApiError) else str(exc))
        self.password_edit.setFocus()
        self.password_edit.selectAll()
