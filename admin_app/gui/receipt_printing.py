"""Receipts through Qt Print Support: preview, print, save as PDF and plain text for 58/80 mm thermal printers.

Every action fetches the receipt from the API again (in a worker), so the gateway counts each print and a
reprint comes back marked COPY. Dialogs are replaceable callables, so tests never open a modal one.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QMarginsF, QObject, QSizeF, Signal
from PySide6.QtGui import QFontDatabase, QPageLayout, QPageSize, QPaintDevice, QPainter, QTextDocument
from PySide6.QtPrintSupport import QPrintDialog, QPrinter, QPrintPreviewDialog
from PySide6.QtWidgets import QFileDialog, QWidget

from . import ScreenContext

PAPER_WIDTHS = {58: 32, 80: 48}  # paper mm -> characters per line the API lays out
SHEET_MM = 120  # pages at least this wide (A5, A4, Letter) are sheets, not rolls
SHEET_FILL = 0.6  # on a sheet the receipt is centred, as wide as this share of the page


def paper_of(printer: QPrinter) -> int:
    """The roll layout (58 or 80 mm) that fits the printer's page: 58 for a narrow roll, 80 for the rest."""
    width = printer.pageLayout().fullRect(QPageLayout.Unit.Millimeter).width()
    return 58 if width < 70 else 80


def receipt_document(text: str, device: QPaintDevice | None = None) -> QTextDocument:
    """The receipt text in a fixed-width font, as the thermal layout expects; laid out for ``device``."""
    document = QTextDocument()
    if device is not None:
        document.documentLayout().setPaintDevice(device)
    document.setDefaultFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    document.setPlainText(text)
    return document


def print_text(printer: QPrinter, text: str) -> None:
    """Print the receipt on one page, shrunk when it is too big for it (no widget involved, so a worker may
    do it).

    A receipt line must stay one line: QTextDocument.print_() adds 2 cm margins and wraps at what is left
    (a 48-character line broke in two on A6, and a 58 mm roll kept room for a few characters). Laid out
    unwrapped on the printer itself, then scaled down (never up) to the printable area, it keeps its shape
    on a roll, on A6 and on A4 alike."""
    document = receipt_document(text, printer)
    scale, left = placement(printer, document.size())
    painter = QPainter(printer)
    try:
        painter.translate(left, 0)
        painter.scale(scale, scale)
        document.drawContents(painter)
    finally:
        painter.end()


def placement(printer: QPrinter, size: QSizeF) -> tuple[float, float]:
    """(scale, left offset) of a laid-out receipt of ``size`` printer pixels: on a roll, shrunk to fit (never
    grown); on a sheet (A5, A4, Letter), grown or shrunk to SHEET_FILL of the width and centred, not a tiny
    roll in the page's corner. Never taller than the page."""
    sheet = printer.pageLayout().fullRect(QPageLayout.Unit.Millimeter).width() >= SHEET_MM
    wide = printer.width() * (SHEET_FILL if sheet else 1.0) / size.width()
    scale = min(wide if sheet else min(1.0, wide), printer.height() / size.height())
    return scale, ((printer.width() - size.width() * scale) / 2 if sheet else 0.0)


def pdf_printer(path: str) -> QPrinter:
    """A QPrinter that writes an A6 PDF file."""
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(path)
    printer.setPageSize(QPageSize(QPageSize.PageSizeId.A6))
    return printer


def thermal_printer(paper_mm: int = 58, printer: QPrinter | None = None) -> QPrinter:
    """A printer set to a roll of ``paper_mm`` wide paper with small margins."""
    printer = printer or QPrinter(QPrinter.PrinterMode.HighResolution)
    size = QPageSize(QSizeF(paper_mm, 200), QPageSize.Unit.Millimeter, f"Roll {paper_mm} mm")
    printer.setPageLayout(QPageLayout(size, QPageLayout.Orientation.Portrait, QMarginsF(2, 2, 2, 2),
                                      QPageLayout.Unit.Millimeter))
    return printer


def choose_printer(parent: QWidget | None) -> QPrinter | None:
    """The default printer choice: the system print dialog; None when cancelled."""
    printer = QPrinter()
    return printer if QPrintDialog(printer, parent).exec() else None


def choose_pdf_path(parent: QWidget | None, reference: str = "") -> str:
    """The default: a save dialog offering receipt-<reference>.pdf; an empty string when cancelled."""
    name = f"receipt-{reference}.pdf" if reference else "receipt.pdf"
    path, _ = QFileDialog.getSaveFileName(parent, "Save receipt as PDF", name, "PDF files (*.pdf)")
    return path


def show_preview(printer: QPrinter, text: str, parent: QWidget | None) -> None:
    """The default preview: Qt's print preview dialog, which can print from there."""
    dialog = QPrintPreviewDialog(printer, parent)
    dialog.paintRequested.connect(lambda target: print_text(target, text))
    dialog.exec()


class ReceiptPrinter(QObject):
    """Receipt actions for one screen; ``done(message)`` after each, ``text_ready(text)`` for thermal text."""

    done = Signal(str)
    text_ready = Signal(str)

    def __init__(self, ctx: ScreenContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx, self.widget = ctx, parent
        self.choose_printer: Callable[[], QPrinter | None] = lambda: choose_printer(self.widget)
        self.choose_pdf_path: Callable[[str], str] = lambda reference: choose_pdf_path(self.widget, reference)
        self.show_preview: Callable[[QPrinter, str], None] = lambda p, text: show_preview(p, text, self.widget)
        self.last_text = ""

    def _fetch(self, payment_id: int, paper_mm: int, then: Callable[[str], None], doing: str,
               render: Callable[[str], None] | None = None, *, preview: bool = False) -> None:
        """The receipt text from the API (counted as a print there), rendered by ``render`` in the same worker
        when given (PDF and printer output need no widget), then ``then(text)`` on the GUI thread."""
        client, width = self.ctx.client, PAPER_WIDTHS.get(paper_mm, 32)

        def work() -> str:
            text = client.receipt(payment_id, "text", width, preview=preview).decode("utf-8")
            if render is not None:
                render(text)
            return text

        self.ctx.run(work, lambda text: self._got(text, then), lambda exc: self.ctx.error(exc, doing), owner=self)

    def _got(self, text: str, then: Callable[[str], None]) -> None:
        self.last_text = text
        then(text)

    def _finish(self, message: str) -> None:
        self.ctx.info(message)
        self.done.emit(message)

    def preview(self, payment_id: int, paper_mm: int = 58) -> None:
        """Print preview on a roll of the given width (the preview's own Print button prints it)."""
        self._fetch(payment_id, paper_mm, lambda text: self._preview(text, paper_mm), "Previewing the receipt",
                    preview=True)

    def _preview(self, text: str, paper_mm: int) -> None:
        self.show_preview(thermal_printer(paper_mm), text)
        self._finish("Receipt preview closed (not counted as a print).")

    def print(self, payment_id: int, paper_mm: int = 58) -> None:
        """Choose a printer first (cancel prints nothing), then fetch and print in the layout that fits the
        page chosen there (``paper_mm`` is only the default of older callers)."""
        printer = self.choose_printer()
        if printer is None:
            return
        paper_mm = paper_of(printer)  # the layout follows the page chosen in the print dialog
        self._fetch(payment_id, paper_mm, self._printed, "Printing the receipt",
                    render=lambda text: print_text(printer, text))

    def _printed(self, text: str) -> None:
        self._finish("Receipt sent to the printer" + (" (marked COPY)." if "COPY" in text else "."))

    def save_pdf(self, payment_id: int, path: str = "", reference: str = "") -> None:
        """Write the receipt to a PDF file (receipt-<reference>.pdf offered) through QPrinter's PDF output."""
        if not path:
            path = self.choose_pdf_path(reference)
        if not path:
            return
        self._fetch(payment_id, 80, lambda _text: self._finish(f"Receipt saved to {path}."),
                    "Saving the receipt as PDF", render=lambda text: print_text(pdf_printer(path), text))

    def thermal_text(self, payment_id: int, paper_mm: int = 58) -> None:
        """The plain text for a 58 or 80 mm thermal printer, via ``text_ready``."""
        self._fetch(payment_id, paper_mm, self._text, "Fetching the receipt text")

    def _text(self, text: str) -> None:
        self.text_ready.emit(text)
        self._finish("Receipt text ready" + (" (marked COPY)." if "COPY" in text else "."))
