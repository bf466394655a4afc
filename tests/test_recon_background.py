"""Large statements import in the background: 202 at once, progress through the API, chunks that give the
same result as one transaction, a dead process's run resumed, a failure recorded and never retried alone."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from bench.recon_data import insert_payments, make_dataset
from gateway.reconciliation import background, service
from shared.db import db
from shared.models import AuditLog, Payment, ReconException, StatementImport, StatementLine, StatementUpload
from shared.timeutil import utcnow
from tests.helpers import staff_headers, wait_for

URL = "/api/v1/reconciliation/statements"
DATA = make_dataset(120, fuzzy_share=0.05, missed_share=0.03, unknown_share=0.04, extra=2)


@pytest.fixture
def small_chunks(monkeypatch):
    """Background from 50 lines, 20 lines a chunk: the 120-line statement takes 6 chunks."""
    monkeypatch.setattr(background, "BACKGROUND_LINES", 50)
    monkeypatch.setattr(background, "CHUNK", 20)


@pytest.fixture
def lipa(make_app, small_chunks):
    app = make_app()
    with db.connection_context():
        insert_payments(DATA.payments)
        heads = staff_headers(("viewer", "operator"))
    return app, heads


def expected_summary() -> dict:
    want = DATA.expected
    return {"lines_by_match": {"RECEIPT": want["receipt"], "FUZZY": want["fuzzy"] + want["missed"],
                               "UNMATCHED": want["unknown"]},
            "open": {"missing_in_lipa": want["unknown"], "missing_in_statement": want["extra"],
                     "unpaid_in_lipa": want["missed"]},
            "settled": want["matched"] - want["missed"]}


def assert_reconciled(summary: dict) -> None:
    want = expected_summary()
    assert summary["lines_by_match"] == want["lines_by_match"]
    assert {kind: row["OPEN"] for kind, row in summary["exceptions_by_kind"].items()} == want["open"]
    with db.connection_context():
        assert Payment.select().where(Payment.status == "SETTLED").count() == want["settled"]
        assert StatementLine.select().count() == DATA.lines


def test_a_large_upload_answers_202_then_progress_reaches_done(lipa):
    app, heads = lipa
    client = app.test_client()
    response = client.post(URL, data=DATA.csv_bytes, content_type="text/csv", headers=heads["operator"])
    assert response.status_code == 202, response.get_json()
    run = response.get_json()
    assert run["status"] in ("QUEUED", "IMPORTING", "DONE") and run["lines_total"] == DATA.lines
    assert response.headers["Location"] == f"/api/v1/reconciliation/runs/{run['id']}"
    url = f"/api/v1/reconciliation/runs/{run['id']}"
    wait_for(lambda: client.get(url, headers=heads["viewer"]).get_json()["run"]["status"] == "DONE")
    done = client.get(url, headers=heads["viewer"]).get_json()["run"]
    assert (done["progress"], done["lines_done"], done["error"]) == (1.0, DATA.lines, None)
    assert_reconciled(done)
    with db.connection_context():
        assert StatementUpload.select().count() == 0  # the kept file goes once the run is done
        audit = AuditLog.get(AuditLog.action == "statement_import")
        assert audit.details["lines"] == DATA.lines and audit.details["settled"] == expected_summary()["settled"]
    again = client.post(URL, data=DATA.csv_bytes, content_type="text/csv", headers=heads["operator"])
    assert again.status_code == 201 and again.get_json()["id"] == run["id"]  # the same file is one import


def test_a_run_whose_process_died_is_resumed_by_the_reconcile_job(lipa, monkeypatch):
    """Two chunks commit, then the process dies: the lease expires, the job finishes the run, no line twice."""
    app, _ = lipa
    with db.connection_context():
        imp = background.queue_import(DATA.csv_bytes, service.parse_statement(DATA.csv_bytes), "digest-1",
                                      filename="big.csv", uploaded_by="staff:operator")
        calls = {"n": 0}
        real_chunk = background._chunk

        def dying(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise SystemExit("the process died")  # not an Exception: nothing marks the run FAILED
            return real_chunk(*args, **kwargs)

        monkeypatch.setattr(background, "_chunk", dying)
        with pytest.raises(SystemExit):
            background.run_import(imp.id)
        half = StatementImport.get_by_id(imp.id)
        assert half.status == "IMPORTING" and 0 < half.lines_done < DATA.lines
        monkeypatch.setattr(background, "_chunk", real_chunk)
        assert background.resume_abandoned() == 0  # its lease still holds: another process may be on it
        StatementImport.update(lease_until=utcnow() - timedelta(seconds=1)).where(
            StatementImport.id == imp.id).execute()
        assert background.resume_abandoned() == 1
        summary = service.run_summary(imp.id)
    assert summary["status"] == "DONE"
    assert_reconciled(summary)


def test_a_failed_run_says_why_and_is_not_retried_on_its_own(lipa, monkeypatch):
    app, heads = lipa
    with db.connection_context():
        imp = background.queue_import(DATA.csv_bytes, service.parse_statement(DATA.csv_bytes), "digest-2",
                                      filename="big.csv", uploaded_by="staff:operator")
        monkeypatch.setattr(service.Run, "match", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
        assert background.run_import(imp.id) == "FAILED"
        assert background.resume_abandoned() == 0
        assert ReconException.select().count() == 0
    run = app.test_client().get(f"/api/v1/reconciliation/runs/{imp.id}", headers=heads["viewer"]).get_json()["run"]
    assert run["status"] == "FAILED" and "disk full" in run["error"]


def test_runs_are_listed_newest_first_over_pages(lipa):
    app, heads = lipa
    client = app.test_client()
    with db.connection_context():
        ids = [StatementImport.create(sha256=f"s{n}", filename=f"nov{n}.csv", lines=n).id for n in range(5)]
    seen, cursor = [], None
    while True:
        body = client.get("/api/v1/reconciliation/runs", query_string={"limit": 2, **({"cursor": cursor} if cursor
                                                                                        else {})},
                          headers=heads["viewer"]).get_json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert [run["id"] for run in seen] == ids[::-1]
    assert seen[0]["filename"] == "nov4.csv" and seen[0]["progress"] == 1.0 and seen[0]["status"] == "DONE"
    assert client.get("/api/v1/reconciliation/runs", query_string={"status": "x"},
                      headers=heads["viewer"]).status_code == 400
    assert client.get("/api/v1/reconciliation/runs").status_code == 401


def test_a_running_import_cancelled_stops_before_its_next_chunk_and_keeps_what_it_matched(lipa, monkeypatch):
    """Cancel as the second chunk starts: it writes nothing and no further chunk runs; the status route
    says CANCELLED, its lines stay matched, no closing step ran; a second cancel is a 409; the same file
    uploaded again resumes after the kept lines and ends DONE with every line once."""
    app, heads = lipa
    client = app.test_client()
    with db.connection_context():
        imp = background.queue_import(DATA.csv_bytes, service.parse_statement(DATA.csv_bytes),
                                      hashlib.sha256(DATA.csv_bytes).hexdigest(),
                                      filename="big.csv", uploaded_by="staff:operator")
    cancel_url = f"/api/v1/reconciliation/runs/{imp.id}/cancel"
    calls, real_chunk, answers = {"n": 0}, background._chunk, []

    def chunk_then_cancel(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # staff press Cancel while this chunk is under way
            answers.append(client.post(cancel_url, headers=heads["operator"]))
        return real_chunk(*args, **kwargs)

    monkeypatch.setattr(background, "_chunk", chunk_then_cancel)
    with db.connection_context():
        assert background.run_import(imp.id) == "CANCELLED"
    assert calls["n"] == 2 and answers[0].status_code == 200, answers[0].get_json()
    assert answers[0].get_json()["status"] == "CANCELLED"
    run = client.get(f"/api/v1/reconciliation/runs/{imp.id}", headers=heads["viewer"]).get_json()["run"]
    assert run["status"] == "CANCELLED" and run["lines_done"] == background.CHUNK  # the first chunk's lines stay
    with db.connection_context():
        assert StatementLine.select().where(StatementLine.statement == imp.id).count() == background.CHUNK
        assert not ReconException.select().where(ReconException.kind == "missing_in_statement").exists()
        assert StatementUpload.select().count() == 0
        assert AuditLog.get(AuditLog.action == "statement_import_cancel").actor == "staff:operator"
        assert background.resume_abandoned() == 0  # a cancelled run is never resumed on its own
    again = client.post(cancel_url, headers=heads["operator"])
    assert again.status_code == 409
    assert again.get_json() == {"error": {"code": "not_running", "message": again.get_json()["error"]["message"]}}
    assert "cancelled" in again.get_json()["error"]["message"]
    monkeypatch.setattr(background, "_chunk", real_chunk)
    resumed = client.post(URL, data=DATA.csv_bytes, content_type="text/csv", headers=heads["operator"])
    assert resumed.status_code == 202 and resumed.get_json()["id"] == imp.id
    url = f"/api/v1/reconciliation/runs/{imp.id}"
    wait_for(lambda: client.get(url, headers=heads["viewer"]).get_json()["run"]["status"] == "DONE")
    assert_reconciled(client.get(url, headers=heads["viewer"]).get_json()["run"])


def test_cancel_needs_an_operator_and_a_finished_run_is_a_409(lipa):
    app, heads = lipa
    client = app.test_client()
    with db.connection_context():
        done = StatementImport.create(sha256="finished", filename="old.csv", lines=3)
    url = f"/api/v1/reconciliation/runs/{done.id}/cancel"
    assert client.post(url, headers=heads["viewer"]).status_code == 403
    assert client.post(url).status_code == 401
    finished = client.post(url, headers=heads["operator"])
    assert finished.status_code == 409
    error = finished.get_json()["error"]
    assert set(error) == {"code", "message"} and error["code"] == "not_running" and "done" in error["message"]
    missing = client.post("/api/v1/reconciliation/runs/999999/cancel", headers=heads["operator"])
    assert missing.status_code == 404 and set(missing.get_json()["error"]) == {"code", "message"}
