"""Receipt printing layout (offscreen Qt, no gateway): a roll keeps the thermal layout, a sheet centres it."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QSizeF  # noqa: E402
from PySide6.QtGui import QPageSize  # noqa: E402
from PySide6.QtPrintSupport import QPrinter  # noqa: E402

from admin_app.gui.receipt_printing import SHEET_FILL, paper_of, placement, receipt_document, thermal_printer  # noqa: E402
from shared.receipts import receipt_data, render_text  # noqa: E402

PAID = {"amount": 1500, "reference": "LPT000001", "mpesa_receipt": "QK7", "account": "ACC1", "phone": "254712345678",
        "status": "COMPLETED", "created_at": "2026-12-02T07:00:00Z"}


@pytest.fixture
def text(qapp):
    return render_text(receipt_data(PAID, 1, False, "Shop"), 48)


def a4(tmp_path) -> QPrinter:
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(tmp_path / "a4.pdf"))
    printer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    return printer


def test_a4_centres_the_receipt_at_a_readable_size(text, tmp_path):
    printer = a4(tmp_path)
    size = receipt_document(text, printer).size()
    scale, left = placement(printer, size)
    assert scale > 1.0  # grown: the thermal layout alone would be a strip in the corner
    drawn = size.width() * scale
    assert drawn == pytest.approx(printer.width() * SHEET_FILL, rel=0.01) or size.height() * scale <= printer.height()
    assert left == pytest.approx((printer.width() - drawn) / 2)
    assert paper_of(printer) == 80


def test_a_roll_keeps_the_thermal_layout_never_grown(text):
    for paper in (58, 80):
        printer = thermal_printer(paper)
        scale, left = placement(printer, receipt_document(text, printer).size())
        assert scale <= 1.0 and left == 0.0
        assert paper_of(printer) == paper


def test_a_tall_receipt_fits_the_page(tmp_path):
    printer = a4(tmp_path)
    scale, _ = placement(printer, QSizeF(100, printer.height() * 4))
    assert scale * printer.height() * 4 <= printer.height() + 1
