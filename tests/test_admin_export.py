"""The desktop's CSV export (Qt-free core): progress by page, a cancel or a failure half-way leaves no half
file, and an earlier export at the same path stays as it was."""
from __future__ import annotations

import pytest

from admin_app.core.export import ExportCancelled, export_payments
from admin_app.core.models import Payment


def payments(n: int):
    for i in range(n):
        yield Payment.from_json({"id": i + 1, "reference": f"LP{i + 1}", "phone": "254712345678", "amount": 100,
                                 "account": "A", "status": "COMPLETED"})


def test_progress_is_told_every_page_and_the_file_appears_complete(tmp_path):
    seen = []
    path = tmp_path / "payments.csv"
    assert export_payments(payments(45), path, progress=seen.append, every=20) == 45
    assert seen == [20, 40] and len(path.read_text(encoding="utf-8-sig").splitlines()) == 46
    assert [p.name for p in tmp_path.iterdir()] == ["payments.csv"]


@pytest.mark.parametrize("stop", ["cancel", "lost"])
def test_a_cancel_or_a_failure_half_way_leaves_no_half_file(tmp_path, stop):
    path = tmp_path / "payments.csv"
    path.write_text("last week's export\n")
    written = []

    def rows():
        for payment in payments(30):
            if len(written) == 25 and stop == "lost":
                raise ConnectionError("gateway gone")
            yield payment

    with pytest.raises(ExportCancelled if stop == "cancel" else ConnectionError):
        export_payments(rows(), path, progress=written.append, every=1, cancelled=lambda: len(written) >= 25)
    assert path.read_text() == "last week's export\n"  # the earlier file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["payments.csv"]  # and no .part is left behind


def test_the_file_gets_the_usual_permissions_not_a_temporary_files(tmp_path):
    """A temporary file is created private (0600); the export must read like any file the user saves."""
    import os

    path = tmp_path / "payments.csv"
    export_payments(payments(1), path)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
