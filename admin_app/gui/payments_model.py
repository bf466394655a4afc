"""The payments table model: one API page at a time, more fetched on demand as the view scrolls.

The model never calls the network itself: a ``fetcher(cursor, on_page, on_error)`` given by the view does
(in a worker), so the model is tested without widgets or threads.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor

from admin_app.core.models import Page, Payment, local_time

Fetcher = Callable[[str, Callable[[Page], None], Callable[[BaseException], None]], None]
Index = QModelIndex | QPersistentModelIndex

COL_ID, COL_CREATED, COL_REFERENCE, COL_STATUS, COL_AMOUNT, COL_PHONE, COL_ACCOUNT, COL_RECEIPT, COL_CHANNEL, \
    COL_FLAGGED = range(10)
HEADERS = ("ID", "Created (EAT)", "Reference", "Status", "Amount (KES)", "Phone", "Account", "M-Pesa receipt",
           "Channel", "Flag")

# (background, foreground) per status: green paid, amber in flight, red failed, grey gave up, blue refunds.
STATUS_COLOURS = {
    "PENDING": ("#fff4ce", "#5c4400"),
    "PROCESSING": ("#ffe8a3", "#5c4400"),
    "COMPLETED": ("#d7f5dd", "#0b5d1e"),
    "SETTLED": ("#b9ebc5", "#0b5d1e"),
    "FAILED": ("#fbd5d5", "#8a1111"),
    "CANCELLED": ("#e8e8e8", "#444444"),
    "EXPIRED": ("#e8e8e8", "#444444"),
    "REFUND_PENDING": ("#dbe8ff", "#123d8a"),
    "REFUNDED": ("#c7dafc", "#123d8a"),
}


def display_texts(p: Payment) -> tuple[str, ...]:
    """The row's cell texts, in column order."""
    return (str(p.id), local_time(p.created_at), p.reference, p.status, f"{p.amount:,}", p.phone, p.account,
            p.mpesa_receipt or "", p.channel, "⚑" if p.flagged else "")


class PaymentsTableModel(QAbstractTableModel):
    """Rows of Payment; ``canFetchMore``/``fetchMore`` follow the API's next_cursor."""

    page_loaded = Signal(int)  # rows appended by fetchMore
    fetch_failed = Signal(object)

    def __init__(self, fetcher: Fetcher | None = None, parent=None):
        super().__init__(parent)
        self.fetcher = fetcher
        self.rows: list[Payment] = []
        self._texts: dict[int, tuple[str, ...]] = {}  # row -> display_texts, made once: views ask on every paint
        self.next_cursor: str | None = None
        self.fetching = False
        self._generation = 0

    # --- the table ------------------------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's own signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        payment, column = self.rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            texts = self._texts.get(index.row())
            if texts is None:
                texts = self._texts[index.row()] = display_texts(payment)
            return texts[column]
        if role == Qt.ItemDataRole.UserRole:
            return payment
        if role == Qt.ItemDataRole.ToolTipRole:
            return payment.flag_reason if column == COL_FLAGGED else payment.status_message or None
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (COL_ID, COL_AMOUNT):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role in (Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole) and column == COL_STATUS:
            return self.status_brush(payment.status, role)
        return None

    @staticmethod
    def status_brush(status: str, role: int) -> QBrush | None:
        """The status cell's colours, so a failed payment stands out in a long list."""
        colours = STATUS_COLOURS.get(status)
        if colours is None:
            return None
        return QBrush(QColor(colours[0] if role == Qt.ItemDataRole.BackgroundRole else colours[1]))

    def payment_at(self, row: int) -> Payment | None:
        return self.rows[row] if 0 <= row < len(self.rows) else None

    # --- loading --------------------------------------------------------------------------------------------

    def set_rows(self, rows: list[Payment], next_cursor: str | None = None) -> None:
        """Replace everything (a new filter or a refresh); an older page still on its way is dropped."""
        self.beginResetModel()
        self._generation += 1
        self.rows, self.next_cursor, self.fetching = list(rows), next_cursor, False
        self._texts.clear()
        self.endResetModel()

    def append_rows(self, rows: list[Payment], next_cursor: str | None = None) -> None:
        """Add a page at the end."""
        self.next_cursor = next_cursor
        if not rows:
            return
        first = len(self.rows)
        self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
        self.rows.extend(rows)
        self.endInsertRows()

    def update_payment(self, payment: Payment) -> None:
        """Show a payment's new state (after an action) where it is already listed."""
        for row, old in enumerate(self.rows):
            if old.id == payment.id:
                self.rows[row] = payment
                self._texts.pop(row, None)
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(HEADERS) - 1))
                return

    def set_status(self, payment_id: int, status: str) -> bool:
        """A status the live feed announced, shown in place with no request; False when not listed."""
        for old in self.rows:
            if old.id == payment_id:
                if old.status != status:
                    self.update_payment(replace(old, status=status))
                return True
        return False

    def merge_top(self, rows: list[Payment]) -> int:
        """A fresh first page merged in: listed rows updated in place, newer ones inserted at the top (the
        selection stays on its payment, as Qt moves it with the inserted rows). How many were added."""
        known = {p.id: p for p in self.rows}
        for payment in rows:
            if payment.id in known and payment != known[payment.id]:
                self.update_payment(payment)
        newest = self.rows[0].id if self.rows else 0
        fresh = [p for p in rows if p.id not in known and p.id > newest]
        if fresh:
            self.beginInsertRows(QModelIndex(), 0, len(fresh) - 1)
            self.rows[:0] = fresh
            self._texts.clear()
            self.endInsertRows()
        return len(fresh)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and bool(self.next_cursor) and not self.fetching and self.fetcher is not None

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        """Ask the fetcher for the page after the last row; the view calls this when scrolled to the end."""
        if not self.canFetchMore(parent):
            return
        self.fetching = True
        generation = self._generation
        self.fetcher(self.next_cursor, lambda page: self._on_page(generation, page),
                     lambda exc: self._on_error(generation, exc))

    def _on_page(self, generation: int, page: Page) -> None:
        if generation != self._generation:
            return
        self.fetching = False
        self.append_rows(page.items, page.next_cursor)
        self.page_loaded.emit(len(page.items))

    def _on_error(self, generation: int, exc: BaseException) -> None:
        if generation != self._generation:
            return
        self.fetching = False
        self.fetch_failed.emit(exc)
