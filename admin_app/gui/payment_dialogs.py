"""The questions a payment's staff actions ask: refund amount, resolve status (each with a mandatory reason),
and Yes/No confirmations. The detail panel calls them through replaceable callables."""
from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QMessageBox,
    QSpinBox,
    QWidget,
)

from admin_app.core.models import Payment


class ReasonDialog(QDialog):
    """A small form whose OK stays disabled until a reason is typed: money decisions say why."""

    def __init__(self, title: str, label: str, field: QWidget, read, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.field, self.read, self.reason = field, read, QLineEdit()
        self.reason.setPlaceholderText("Why (kept in the audit log)")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.reason.textChanged.connect(self._check)
        form = QFormLayout(self)
        form.addRow(label, field)
        form.addRow("Reason", self.reason)
        form.addRow(self.buttons)
        self._check()

    def _check(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.reason.text().strip()))

    def values(self) -> tuple:
        """(the field's value, the reason)."""
        return self.read(), self.reason.text().strip()


def refund_dialog(payment: Payment, parent: QWidget | None = None) -> ReasonDialog:
    """Amount (up to what is still refundable) and reason."""
    amount = QSpinBox()
    amount.setRange(1, max(payment.refundable, 1))
    amount.setValue(payment.refundable)
    amount.setPrefix("KES ")
    return ReasonDialog(f"Refund {payment.reference}", "Amount", amount, amount.value, parent)


def resolve_dialog(payment: Payment, parent: QWidget | None = None) -> ReasonDialog:
    """A status the state machine allows from here, and the mandatory reason."""
    status = QComboBox()
    status.addItems(list(payment.allowed_transitions))
    return ReasonDialog(f"Resolve {payment.reference} by hand", "New status", status, status.currentText, parent)


def ask(dialog: ReasonDialog):
    """The default way to ask: the dialog, modal; None when cancelled."""
    return dialog.values() if dialog.exec() == QDialog.DialogCode.Accepted else None


def confirm_box(parent: QWidget, title: str, text: str) -> bool:
    """The default confirmation: a Yes/No question."""
    answer = QMessageBox.question(parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes
