"""The questions a payment's staff actions ask: refund amount, resolve status (each with a mandatory reason),
and Yes/No confirmations. The detail panel calls them through replaceable callables."""
from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QWidget,
)

from admin_app.core.models import Payment
from admin_app.core.refund_form import REASONS, Refundable, check_amount, reason_text


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


class RefundDialog(QDialog):
    """Paid, already refunded, on its way and the maximum shown; the amount checked as it is typed (refused
    inline, never changed); a reason category, with details required for Other. OK only when all is right."""

    def __init__(self, payment: Payment, refunds: list[dict] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Refund {payment.reference}")
        self.setMinimumWidth(460)
        self.money = Refundable.of(payment, refunds or [])
        self.amount = QLineEdit(str(self.money.maximum))
        self.amount.setPlaceholderText(f"1 to {self.money.maximum:,}")
        self.category = QComboBox()
        for key, label in REASONS:
            self.category.addItem(label, key)
        self.category.setCurrentIndex(-1)
        self.category.setPlaceholderText("Choose a reason")
        self.details = QLineEdit()
        self.details.setPlaceholderText("Details (kept in the audit log; required for Other)")
        self.problem = QLabel("")
        self.problem.setStyleSheet("color: #8a1111;")
        self.problem.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Refund")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self._layout(payment)
        for signal in (self.amount.textChanged, self.details.textChanged, self.category.currentIndexChanged):
            signal.connect(self._check)
        self._check()

    def _layout(self, payment: Payment) -> None:
        m = self.money
        form = QFormLayout(self)
        form.addRow("Payment", QLabel(f"{payment.reference} · {payment.phone} · M-Pesa {payment.mpesa_receipt or '—'}"))
        form.addRow("Amount paid", QLabel(f"KES {m.paid:,}"))
        form.addRow("Already refunded", QLabel(f"KES {m.refunded:,}"))
        if m.in_flight:
            form.addRow("Refunds on their way", QLabel(f"KES {m.in_flight:,}"))
        form.addRow("Refundable now", QLabel(f"<b>KES {m.maximum:,}</b>"))
        form.addRow("Amount to refund (KES)", self.amount)
        form.addRow("Reason", self.category)
        form.addRow("Details", self.details)
        form.addRow(self.problem)
        form.addRow(self.buttons)

    def _check(self) -> None:
        amount, why = check_amount(self.amount.text(), self.money.maximum)
        if not why:
            _reason, why = reason_text(self.category.currentData() or "", self.details.text())
        self.problem.setText(why)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not why)

    def values(self) -> tuple[int, str]:
        """(amount, reason) once OK was pressed (the checks passed)."""
        amount, _ = check_amount(self.amount.text(), self.money.maximum)
        reason, _ = reason_text(self.category.currentData() or "", self.details.text())
        return int(amount or 0), reason or ""


def refund_dialog(payment: Payment, parent: QWidget | None = None, refunds: list[dict] | None = None) -> RefundDialog:
    """The refund form for the payment, knowing the refunds already made or on their way."""
    return RefundDialog(payment, refunds, parent)


class ResolveDialog(ReasonDialog):
    """A status the state machine allows from here, the mandatory reason, and for COMPLETED the M-Pesa
    receipt: the gateway checks it with Transaction Status before anything moves."""

    def __init__(self, payment: Payment, parent: QWidget | None = None):
        status = QComboBox()
        status.addItems(list(payment.allowed_transitions))
        self.receipt = QLineEdit()
        self.receipt.setPlaceholderText("M-Pesa receipt, e.g. QK12ABC34D (M-Pesa confirms it first)")
        super().__init__(f"Resolve {payment.reference} by hand", "New status", status, status.currentText, parent)
        self.setMinimumWidth(460)
        self.layout().insertRow(1, "M-Pesa receipt", self.receipt)
        status.currentTextChanged.connect(self._check)
        self.receipt.textChanged.connect(self._check)
        self._check()

    def _check(self) -> None:
        super()._check()
        if not hasattr(self, "receipt"):
            return
        needs = self.field.currentText() == "COMPLETED"
        self.receipt.setEnabled(needs)
        if needs and not self.receipt.text().strip():
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)

    def values(self) -> tuple:
        """(status, reason, receipt) — the receipt only for COMPLETED."""
        status, reason = super().values()
        return status, reason, (self.receipt.text().strip().upper() if status == "COMPLETED" else "")


def resolve_dialog(payment: Payment, parent: QWidget | None = None) -> ResolveDialog:
    """The resolve form for the payment."""
    return ResolveDialog(payment, parent)


def ask(dialog: ReasonDialog | RefundDialog):
    """The default way to ask: the dialog, modal; None when cancelled."""
    return dialog.values() if dialog.exec() == QDialog.DialogCode.Accepted else None


def confirm_box(parent: QWidget, title: str, text: str) -> bool:
    """The default confirmation: a Yes/No question."""
    answer = QMessageBox.question(parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes
