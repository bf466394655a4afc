"""GET /api/v1/payments/<id>/receipt: numbered on the first print, COPY after, PDF or thermal text."""
import re
import zlib
from datetime import datetime

import pytest

from shared.models import AuditLog, Payment, Receipt
from tests.helpers import staff_headers

PAID = dict(phone="254712345678", amount=20500, account="ADM1042", channel="ussd", status="COMPLETED",
            mpesa_receipt="QK12ABC34D", completed_at=datetime(2024, 5, 1, 11, 3))


@pytest.fixture
def heads(conn):
    return staff_headers(("viewer", "operator"), merchants={"merchant": "Shop"})


def pay(reference="LP7K3M9QX", **kw):
    return Payment.create(reference=reference, **{**PAID, **kw})


def pdf_text(data: bytes) -> str:
    """The text shown on the pages: pypdf when installed, else the inflated content streams."""
    try:
        from pypdf import PdfReader
    except ImportError:
        streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S)
        shown = []
        for raw in streams:
            try:
                shown += re.findall(rb"\((.*?)\) ?Tj", zlib.decompress(raw))
            except zlib.error:
                continue
        return " ".join(part.decode("latin-1") for part in shown)
    import io

    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def get(client, payment, heads, **query):
    return client.get(f"/api/v1/payments/{payment.id}/receipt", headers=heads["viewer"], query_string=query)


def test_first_print_is_the_original_then_copies(client, heads):
    payment = pay()
    first = get(client, payment, heads)
    assert first.status_code == 200 and first.mimetype == "application/pdf" and first.data.startswith(b"%PDF")
    number = first.headers["X-Receipt-Number"]
    text = pdf_text(first.data)
    assert f"{int(number):06d}" in text and "Twenty thousand five hundred shillings only" in text
    assert "QK12ABC34D" in text and "COPY" not in text and "2024-05-01 14:03 EAT" in text
    second = get(client, payment, heads, format="pdf")
    assert "COPY" in pdf_text(second.data) and second.headers["X-Receipt-Number"] == number
    assert Receipt.get(Receipt.payment == payment).prints == 2
    assert AuditLog.select().where(AuditLog.action == "print_receipt").count() == 2


@pytest.mark.parametrize("width", ["32", "48"])
def test_text_receipt_fits_the_printer(client, heads, width):
    payment = pay()
    response = get(client, payment, heads, format="text", width=width)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    lines = response.get_data(as_text=True).splitlines()
    assert max(len(line) for line in lines) <= int(width)
    joined = " ".join(line.strip() for line in lines)
    assert "Lipa" in lines[0] and "254712***678" in joined and "LP7K3M9QX" in joined and "KES 20,500" in joined
    assert "COPY" not in joined
    assert "COPY" in get(client, payment, heads, format="text", width=width).get_data(as_text=True)


def test_receipt_numbers_are_sequential(client, heads):
    first, second = pay("LPAAAAAA1"), pay("LPAAAAAA2", mpesa_receipt="QK2", status="REFUNDED")
    a = int(get(client, first, heads, format="text").headers["X-Receipt-Number"])
    b = int(get(client, second, heads, format="text").headers["X-Receipt-Number"])
    assert b == a + 1
    assert int(get(client, first, heads, format="text").headers["X-Receipt-Number"]) == a


def test_only_paid_payments_have_receipts(client, heads):
    for status in ("PENDING", "PROCESSING", "FAILED", "CANCELLED", "EXPIRED"):
        response = get(client, pay(f"LPX{status[:6]}", status=status, mpesa_receipt=None), heads)
        assert response.status_code == 409 and response.get_json()["error"]["code"] == "no_receipt"
    assert Receipt.select().count() == 0


def test_receipt_access_and_options(client, heads):
    payment = pay()
    url = f"/api/v1/payments/{payment.id}/receipt"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=heads["merchant"]).status_code == 403
    assert client.get("/api/v1/payments/999/receipt", headers=heads["viewer"]).status_code == 404
    for query in ({"format": "docx"}, {"format": "text", "width": "40"}, {"format": "text", "width": "x"}):
        assert get(client, payment, heads, **query).status_code == 400
    assert Receipt.select().count() == 0


def test_merchant_name_from_config(client, app, heads, monkeypatch):
    config = app.extensions["lipa"].config
    if not hasattr(config, "merchant_name"):
        pytest.skip("Config has no merchant_name yet")
    monkeypatch.setattr(app.extensions["lipa"], "config", config.with_overrides(merchant_name="Duka Bora"))
    assert "Duka Bora" in get(client, pay(), heads, format="text").get_data(as_text=True)


def test_a_preview_is_never_counted_as_a_print(client, heads):
    """?preview=1 writes no receipt row and no audit; the first real print after previews is the original."""
    payment = pay()
    for _ in range(2):
        shown = get(client, payment, heads, preview=1, format="text")
        assert shown.status_code == 200 and shown.headers["X-Receipt-Preview"] == "true"
        assert "*** PREVIEW ***" in shown.get_data(as_text=True) and "COPY" not in shown.get_data(as_text=True)
    assert Receipt.select().count() == 0 and AuditLog.select().count() == 0
    first = get(client, payment, heads, format="text")
    assert first.headers["X-Receipt-Copy"] == "false" and "PREVIEW" not in first.get_data(as_text=True)
    again = get(client, payment, heads, preview=1, format="text")  # previews what the next print would be
    assert again.headers["X-Receipt-Copy"] == "true" and again.headers["X-Receipt-Number"] == first.headers[
        "X-Receipt-Number"]
    assert Receipt.get().prints == 1
    pdf = get(client, payment, heads)
    assert pdf.headers["Content-Disposition"] == 'inline; filename="receipt-LP7K3M9QX.pdf"'
