"""One payment: its facts, its timeline with the raw payloads, and the staff actions the role and state allow.

Questions to the staff member (refund amount, resolve reason, confirmations, printer) go through
replaceable callables, so tests answer them without a modal dialog blocking the event loop; the dialogs
themselves are in ``payment_dialogs``.
"""
from __future__ import annotations

import html
from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from admin_app.core.models import (
    PRINT,
    REFUND,
    REQUERY,
    RESEND,
    RESOLVE,
    RETRY,
    Payment,
    PaymentDetail,
    local_time,
    why_not,
)
from admin_app.core.refund_form import action_outcome, refund_line
from admin_app.core.words import wrap_to_width
from shared.timeutil import NAIROBI

from . import ScreenContext
from .payment_dialogs import ask, confirm_box, refund_dialog, resolve_dialog
from .payments_model import STATUS_COLOURS
from .receipt_printing import ReceiptPrinter, choose_printer

PREVIEW, PDF = "preview", "pdf"  # receipt outputs: allowed whenever printing is
STORY_ROLE = Qt.ItemDataRole.UserRole + 1  # a timeline entry's words as the gateway gave them (before wrapping)
BUTTONS = ((REQUERY, "Re-query M-Pesa"), (RESEND, "Resend receipt SMS"), (RETRY, "Retry"), (REFUND, "Refund…"),
           (RESOLVE, "Resolve by hand…"), (PRINT, "Print receipt"), (PREVIEW, "Preview receipt"),
           (PDF, "Save receipt PDF…"))


def short_time(moment) -> str:
    """"02 Dec 21:34:53" in Nairobi time: date and time fit a narrow panel (the year is in the tooltip)."""
    return moment.astimezone(NAIROBI).strftime("%d %b %H:%M:%S") if moment else ""


class PaymentDetailPanel(QWidget):
    """The detail of the payment opened from the list; reloads itself after every action."""

    loaded = Signal()  # a detail load finished (success or not)
    payment_changed = Signal(object)  # a fresher Payment, for the list's row
    payment_created = Signal(object)  # a retry made a new Payment
    attempt_opened = Signal(int)  # another attempt of the retry chain was opened from its link

    def __init__(self, ctx: ScreenContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.payment: Payment | None = None
        self.detail: PaymentDetail | None = None
        self.busy = False
        self.confirm = lambda title, text: confirm_box(self, title, text)
        self.ask_refund = lambda payment: ask(refund_dialog(payment, self, self.detail.refunds if self.detail else []))
        self.ask_resolve = lambda payment: ask(resolve_dialog(payment, self))
        self.choose_printer = lambda: choose_printer(self)
        self._build_header()
        self._build_actions()
        self._build_timeline()
        self._build_layout()
        self._update_buttons()

    # --- widgets --------------------------------------------------------------------------------------------

    def _build_header(self) -> None:
        self.title_label = QLabel("No payment open")
        self.title_label.setStyleSheet("font-size: 15pt; font-weight: 600;")
        self.facts_label = QLabel("")
        self.facts_label.setTextFormat(Qt.TextFormat.PlainText)  # provider text is never markup
        self.facts_label.setWordWrap(True)
        self.facts_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.refunds_label = QLabel("")  # the payment's refunds, one line each, moving live with the feed
        self.refunds_label.setTextFormat(Qt.TextFormat.PlainText)
        self.refunds_label.setWordWrap(True)
        self.refunds_label.hide()
        self.attempts_label = QLabel("")  # "Retry of …" / "Retried as …", each a link that opens that attempt
        self.attempts_label.setTextFormat(Qt.TextFormat.RichText)
        self.attempts_label.linkActivated.connect(lambda link: self.open_attempt(int(link.rsplit(":", 1)[1])))
        self.attempts_label.hide()

    def _build_actions(self) -> None:
        self.buttons: dict[str, QPushButton] = {}
        handlers = {REQUERY: self.requery, RESEND: self.resend_receipt, RETRY: self.retry, REFUND: self.refund,
                    RESOLVE: self.resolve, PRINT: self.print_receipt,
                    PREVIEW: lambda: self.receipts.preview(self.payment.id),
                    PDF: lambda: self.receipts.save_pdf(self.payment.id, reference=self.payment.reference)}
        self.receipts = ReceiptPrinter(self.ctx, self)  # print, preview and PDF through Qt Print Support
        self.receipts.choose_printer = lambda: self.choose_printer()
        self.receipts.done.connect(lambda _message: self.refresh())  # the gateway counted the print
        for action, text in BUTTONS:
            button = QPushButton(text)
            button.clicked.connect(handlers[action])
            self.buttons[action] = button

    def _build_timeline(self) -> None:
        """Time, then what happened in words (it takes the room left, so it is never scrolled off at 1366x768),
        then who; each entry expands to its raw payload, with times in EAT, and Ctrl+C copies it."""
        self.timeline = QTreeWidget()
        self.timeline.setHeaderLabels(["Time (EAT)", "What happened", "By"])
        self.timeline.setColumnWidth(0, 150)
        self.timeline.setColumnWidth(2, 105)
        header = self.timeline.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.sectionResized.connect(lambda index, _old, _new: index == 1 and self._rewrap())
        self.timeline.setWordWrap(True)  # a long story wraps onto a second line instead of being cut
        self.timeline.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.timeline.setUniformRowHeights(False)
        self.timeline.setAlternatingRowColors(True)
        copy = QShortcut(QKeySequence.StandardKey.Copy, self.timeline, context=Qt.ShortcutContext.WidgetShortcut)
        copy.activated.connect(self.copy_entry)

    def _build_layout(self) -> None:
        rows = [QHBoxLayout(), QHBoxLayout(), QHBoxLayout()]
        for n, (action, _) in enumerate(BUTTONS):
            rows[n // 3].addWidget(self.buttons[action])
        layout = QVBoxLayout(self)
        for widget in (self.title_label, self.facts_label, self.attempts_label, self.refunds_label):
            layout.addWidget(widget)
        for row in rows:
            layout.addLayout(row)
        layout.addWidget(QLabel("Timeline (expand an entry for its raw payload)"))
        layout.addWidget(self.timeline, 1)

    # --- loading --------------------------------------------------------------------------------------------

    def show_payment(self, payment: Payment) -> None:
        """Show what the list already knows at once, then load the full story."""
        self.payment, self.detail = payment, None
        self._show_facts(payment)
        self._show_refunds([])
        self.timeline.clear()
        self.refresh()

    def refresh(self) -> None:
        if self.payment is None:
            self.loaded.emit()
            return
        self.ctx.run(lambda pid=self.payment.id: self.ctx.client.payment(pid), self._on_detail,
                     self._on_detail_error, owner=self)

    def _on_detail(self, detail: PaymentDetail) -> None:
        if self.payment is None or detail.payment.id != self.payment.id:
            return
        self.payment, self.detail = detail.payment, detail
        self._show_facts(detail.payment)
        self._show_refunds(detail.refunds)
        self._fill_timeline(detail)
        self.payment_changed.emit(detail.payment)
        self.loaded.emit()

    def _on_detail_error(self, exc: BaseException) -> None:
        self.ctx.error(exc, "Loading the payment")
        self.loaded.emit()

    def _show_facts(self, p: Payment) -> None:
        background, foreground = STATUS_COLOURS.get(p.status, ("#eeeeee", "#000000"))
        self.title_label.setText(f"{html.escape(p.reference)} <span style='background:{background}; color:{foreground};"
                                 f" font-size: 11pt;'>&nbsp;{html.escape(p.status)}&nbsp;</span>")
        lines = [f"KES {p.amount:,} · account {p.account} · phone {p.phone} · via {p.channel}",
                 f"Created {local_time(p.created_at)} EAT · M-Pesa receipt {p.mpesa_receipt or '—'}",
                 p.status_message]
        if p.refunded_amount:
            lines.append(f"Refunded so far: KES {p.refunded_amount:,}")
        if p.flagged:
            lines.append(f"⚑ Flagged: {p.flag_reason or 'no reason given'}")
        self.facts_label.setText("\n".join(line for line in lines if line))
        self._show_attempts(p)
        self._update_buttons()

    def _show_attempts(self, p: Payment) -> None:
        def link(attempt) -> str:
            return (f"<a href='payment:{attempt.id}'>{html.escape(attempt.reference)}</a> "
                    f"({html.escape(attempt.status.replace('_', ' ').lower())})")
        parts = []
        if p.retry_of_attempt:
            parts.append(f"Retry of {link(p.retry_of_attempt)}")
        if p.retried_as:
            parts.append("Retried as " + ", ".join(link(a) for a in p.retried_as))
        self.attempts_label.setText(" · ".join(parts))
        self.attempts_label.setVisible(bool(parts))

    def follow_attempt(self, attempt_id: int, status: str) -> None:
        """A linked attempt's status from the live feed: its label changes in place, with no request."""
        changed = self.payment.with_attempt_status(attempt_id, status) if self.payment and status else None
        if changed is None:
            return
        self.payment = changed
        if self.detail is not None:
            self.detail = replace(self.detail, payment=changed)
        self._show_attempts(changed)

    def open_attempt(self, payment_id: int) -> None:
        """Open another attempt of the chain in this panel (and select its row when it is listed)."""
        self.ctx.run(lambda: self.ctx.client.payment(payment_id), self._opened_attempt, self._on_detail_error,
                     owner=self)

    def _opened_attempt(self, detail: PaymentDetail) -> None:
        self.payment = detail.payment
        self._on_detail(detail)
        self.attempt_opened.emit(detail.payment.id)

    def _show_refunds(self, refunds: list[dict]) -> None:
        lines = [refund_line(r) for r in refunds]
        self.refunds_label.setText("Refunds\n" + "\n".join(lines) if lines else "")
        self.refunds_label.setVisible(bool(lines))

    def _fill_timeline(self, detail: PaymentDetail) -> None:
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.timeline.clear()
        for entry in detail.events:
            item = QTreeWidgetItem([short_time(entry.at), entry.summary, entry.actor])
            item.setData(1, STORY_ROLE, entry.summary)
            item.setToolTip(0, f"{local_time(entry.at)} EAT")
            item.setToolTip(1, f"{entry.summary}\n({entry.type})")
            item.setData(0, Qt.ItemDataRole.UserRole, entry.pretty() if entry.details else entry.summary)
            if entry.details:
                child = QTreeWidgetItem([entry.pretty()])
                child.setData(0, Qt.ItemDataRole.UserRole, entry.pretty())
                child.setFont(0, mono)
                item.addChild(child)
            self.timeline.addTopLevelItem(item)
            if item.childCount():
                item.child(0).setFirstColumnSpanned(True)
        self._rewrap()

    def _rewrap(self, *_args) -> None:
        """Break each story onto lines that fit the "What happened" column as it is now (on every resize of
        it): QTreeWidget's own word wrap does not grow a row, so a long refund reason was cut with "..."."""
        metrics = self.timeline.fontMetrics()
        width = self.timeline.columnWidth(1) - 2 * metrics.averageCharWidth()
        for i in range(self.timeline.topLevelItemCount()):
            item = self.timeline.topLevelItem(i)
            story = item.data(1, STORY_ROLE)
            if story:
                item.setText(1, wrap_to_width(story, metrics.horizontalAdvance, width))

    def copy_entry(self) -> None:
        """Ctrl+C on a timeline entry: its raw payload (or its words) to the clipboard."""
        item = self.timeline.currentItem()
        if item is not None:
            QGuiApplication.clipboard().setText(str(item.data(0, Qt.ItemDataRole.UserRole) or item.text(1)))
            self.ctx.info("Copied the timeline entry.")

    def _update_buttons(self) -> None:
        allowed = self.payment.actions(self.ctx.role) if self.payment else frozenset()
        for action, button in self.buttons.items():
            needed = PRINT if action in (PREVIEW, PDF) else action
            button.setEnabled(needed in allowed and not self.busy)
            button.setToolTip("Busy with the last action…" if self.busy and needed in allowed
                              else why_not(needed, self.payment, self.ctx.role))  # a disabled button says why

    # --- actions --------------------------------------------------------------------------------------------

    def _act(self, what: str, call, done) -> None:
        """Run one action in a worker; its outcome goes to the message bar, then the detail reloads."""
        if self.payment is None or self.busy:
            return
        self.busy = True
        self._update_buttons()
        self.ctx.run(call, lambda value: self._acted(done, value), lambda exc: self._failed(what, exc), owner=self)

    def _acted(self, done, value) -> None:
        self.busy = False
        self._update_buttons()
        self.ctx.info(done(value))
        self.refresh()

    def _failed(self, what: str, exc: BaseException) -> None:
        self.busy = False
        self._update_buttons()
        self.ctx.action_failed(exc, f"{what} of {self.payment.reference if self.payment else 'the payment'}")
        self.refresh()

    def requery(self) -> None:
        """Ask M-Pesa how the push ended, now."""
        p, client = self.payment, self.ctx.client
        self._act("Re-query", lambda: client.requery(p.id),
                  lambda r: f"M-Pesa says for {p.reference}: {r['query']['result_desc']} ({r['applied']}); "
                            f"now {r['payment'].status}.")

    def resend_receipt(self) -> None:
        """Queue the receipt SMS again."""
        p, client = self.payment, self.ctx.client
        self._act("Resending the receipt", lambda: client.resend_receipt(p.id),
                  lambda r: f"Receipt SMS for {p.reference} queued again.")

    def retry(self) -> None:
        """Send a new push linked to this failed payment."""
        p, client = self.payment, self.ctx.client
        if p is None or not self.confirm("Retry payment", f"Send a new M-Pesa prompt for KES {p.amount:,} "
                                                          f"to {p.phone}?"):
            return
        self._act("Retry", lambda: client.retry(p.id), self._retried)

    def _retried(self, fresh: Payment) -> str:
        self.payment_created.emit(fresh)
        return f"Retry of {self.payment.reference if self.payment else ''} started as {fresh.reference}."

    def refund(self) -> None:
        """Ask amount and reason, confirm, then start the refund (admin)."""
        p, client = self.payment, self.ctx.client
        answer = self.ask_refund(p) if p else None
        if not answer or not self.confirm("Confirm refund", f"Refund KES {answer[0]:,} of {p.reference} to "
                                                            f"{p.phone}?\nReason: {answer[1]}"):
            return
        self._act("Refund", lambda: client.refund(p.id, *answer), lambda r: action_outcome("Refund", p.reference, r))

    def resolve(self) -> None:
        """Set a status by hand, with a mandatory reason (admin)."""
        p, client = self.payment, self.ctx.client
        answer = self.ask_resolve(p) if p else None
        if not answer or not self.confirm("Confirm resolution", f"Set {p.reference} to {answer[0]}?\n"
                                                                f"Reason: {answer[1]}"):
            return
        self._act("Resolving", lambda: client.resolve(p.id, *answer),
                  lambda r: action_outcome("Resolving", p.reference, r))

    def print_receipt(self) -> None:
        """Choose a printer first (cancelling prints nothing), then fetch the numbered receipt and print it, both
        in a worker."""
        p = self.payment
        if p is None or PRINT not in p.actions(self.ctx.role):
            self.ctx.info("Only a paid payment has a receipt to print.")
            return
        self.receipts.print(p.id)
