"""Alerts, notifications, jobs and reconciliation routes: results, cursors and each role."""
import io

import pytest

from shared.db import db
from shared.models import Alert, AuditLog, Notification, Payment
from tests.conftest import fixture_text

API = "/api/v1"


@pytest.fixture
def app(quiet_app):
    return quiet_app


def statuses(client, method, url, headers_by_role, **kwargs):
    """The status code each caller gets."""
    return {role: getattr(client, method)(url, headers=h, **kwargs).status_code for role, h in headers_by_role.items()}


def audits(action):
    with db.connection_context():
        return list(AuditLog.select().where(AuditLog.action == action).order_by(AuditLog.id))


# --- alerts -----------------------------------------------------------------------------------------------

def make_alerts():
    with db.connection_context():
        rows = [Alert.create(kind="late_money", message=f"alert {n}", acknowledged=n % 2 == 0) for n in range(7)]
    return rows


def test_alerts_name_their_payment_and_acknowledge_in_bulk(client, as_):
    with db.connection_context():
        paid = Payment.create(reference="LPREF0001", phone="254712345678", amount=5, account="A", channel="ussd",
                              status="COMPLETED")
        ids = [Alert.create(kind="late_money", message=f"m{n}", payment=paid if n == 0 else None).id for n in range(3)]
    items = client.get(f"{API}/alerts", headers=as_["viewer"]).get_json()["items"]
    assert {i["id"]: i["payment_reference"] for i in items} == {ids[0]: "LPREF0001", ids[1]: None, ids[2]: None}
    url = f"{API}/alerts/acknowledge"
    assert client.post(url, json={"ids": ids[:2]}, headers=as_["viewer"]).status_code == 403
    assert client.post(url, json={"ids": ["x"]}, headers=as_["operator"]).status_code == 400
    assert client.post(url, json={"ids": list(range(1, 300))}, headers=as_["operator"]).status_code == 400
    done = client.post(url, json={"ids": ids[:2], "note": "seen"}, headers=as_["operator"])
    assert done.status_code == 200 and done.get_json() == {"acknowledged": 2}
    assert client.post(url, json={"ids": ids}, headers=as_["operator"]).get_json() == {"acknowledged": 1}
    with db.connection_context():
        assert Alert.select().where(Alert.acknowledged == True).count() == 3  # noqa: E712
        assert AuditLog.select().where(AuditLog.action == "alert_ack").count() == 3


def test_alerts_unacknowledged_first_then_newest_over_pages(client, as_):
    rows = make_alerts()
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"{API}/alerts", query_string=query, headers=as_["viewer"]).get_json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = sorted(rows, key=lambda a: (a.acknowledged, -a.id))
    assert [a["id"] for a in seen] == [a.id for a in expected]
    open_only = client.get(f"{API}/alerts?acknowledged=false", headers=as_["viewer"]).get_json()["items"]
    assert {a["id"] for a in open_only} == {a.id for a in rows if not a.acknowledged}
    assert client.get(f"{API}/alerts?cursor=nope", headers=as_["viewer"]).status_code == 400
    assert client.get(f"{API}/alerts?acknowledged=maybe", headers=as_["viewer"]).status_code == 400


def test_ack_needs_an_operator_and_is_audited_once(client, as_):
    alert = make_alerts()[1]
    url = f"{API}/alerts/{alert.id}/ack"
    assert statuses(client, "post", url, {r: as_[r] for r in (None, "merchant", "viewer")}) == {
        None: 401, "merchant": 403, "viewer": 403}
    response = client.post(url, json={"note": "seen it"}, headers=as_["operator"])
    assert response.status_code == 200 and response.get_json()["acknowledged"] is True
    assert client.post(url, headers=as_["admin"]).status_code == 200
    rows = audits("alert_ack")
    assert len(rows) == 1 and rows[0].actor == "staff:operator" and rows[0].reason == "seen it"
    assert rows[0].target_id == str(alert.id)
    assert client.post(f"{API}/alerts/999999/ack", headers=as_["operator"]).status_code == 404
    assert client.post(url, json={"other": 1}, headers=as_["operator"]).status_code == 400


# --- notifications ----------------------------------------------------------------------------------------

def make_notifications():
    with db.connection_context():
        payment = Payment.create(reference="LP000001", phone="254700000001", amount=10, account="A", channel="api")
        spec = [("sms", "SENT"), ("sms", "FAILED"), ("webhook", "FAILED"), ("sms", "DELIVERED"), ("webhook", "SENT")]
        rows = [Notification.create(channel=channel, kind="payment_completed", status=status, body="x",
                                    recipient="254700000001", payment=payment if n < 3 else None)
                for n, (channel, status) in enumerate(spec)]
    return payment, rows


def test_notifications_filters_and_failures_first(client, as_):
    payment, rows = make_notifications()

    def ids(query):
        response = client.get(f"{API}/notifications", query_string=query, headers=as_["viewer"])
        assert response.status_code == 200, response.get_json()
        return [n["id"] for n in response.get_json()["items"]]

    assert ids({}) == [n.id for n in reversed(rows)]
    assert ids({"status": "failed"}) == [rows[2].id, rows[1].id]
    assert ids({"channel": "webhook"}) == [rows[4].id, rows[2].id]
    assert ids({"payment_id": payment.id}) == [rows[2].id, rows[1].id, rows[0].id]
    assert ids({"order": "failures"}) == [rows[2].id, rows[1].id, rows[4].id, rows[3].id, rows[0].id]
    paged = ids({"order": "failures", "limit": 3})
    body = client.get(f"{API}/notifications", query_string={"order": "failures", "limit": 3},
                      headers=as_["viewer"]).get_json()
    rest = client.get(f"{API}/notifications", query_string={"order": "failures", "limit": 3,
                                                            "cursor": body["next_cursor"]}, headers=as_["viewer"])
    assert paged + [n["id"] for n in rest.get_json()["items"]] == ids({"order": "failures"})
    assert "*" in body["items"][0]["recipient"] or body["items"][0]["channel"] == "webhook"


@pytest.mark.parametrize("query", [{"status": "LOST"}, {"channel": "fax"}, {"payment_id": "x"},
                                   {"payment_id": "99999999999999999999"}, {"payment_id": "²"}, {"order": "oldest"},
                                   {"colour": "red"}])
def test_notification_filters_are_checked(client, as_, query):
    response = client.get(f"{API}/notifications", query_string=query, headers=as_["viewer"])
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_filter"


def test_notifications_roles(client, as_):
    assert statuses(client, "get", f"{API}/notifications", as_) == {
        None: 401, "merchant": 403, "viewer": 200, "operator": 200, "admin": 200}


# --- jobs -------------------------------------------------------------------------------------------------

@pytest.fixture
def runner():
    return pytest.importorskip("gateway.jobs.runner")


def test_jobs_list_and_manual_run(client, as_, runner):
    body = client.get(f"{API}/jobs", headers=as_["viewer"]).get_json()
    assert "expire-requests" in {job["name"] for job in body["items"]}
    url = f"{API}/jobs/expire-requests/run"
    assert statuses(client, "post", url, {r: as_[r] for r in (None, "merchant", "viewer")}) == {
        None: 401, "merchant": 403, "viewer": 403}
    response = client.post(url, headers=as_["operator"])
    assert response.status_code == 200, response.get_json()
    run = response.get_json()
    assert run["job"] == "expire-requests" and run["outcome"] == "OK" and run["trigger"] == "manual:operator"
    assert run["started_at"].endswith("Z")
    assert [a.actor for a in audits("job_run")] == ["staff:operator"]
    stats = {job["name"]: job for job in client.get(f"{API}/jobs", headers=as_["viewer"]).get_json()["items"]}
    assert stats["expire-requests"]["runs"] == 1
    assert client.post(f"{API}/jobs/no-such-job/run", headers=as_["operator"]).status_code == 404


def test_pause_and_resume_are_for_admins(client, as_, runner):
    for action in ("pause", "resume"):
        url = f"{API}/jobs/retention/{action}"
        assert statuses(client, "post", url, {r: as_[r] for r in (None, "viewer", "operator")}) == {
            None: 401, "viewer": 403, "operator": 403}
    assert client.post(f"{API}/jobs/retention/pause", headers=as_["admin"]).get_json() == {
        "job": "retention", "paused": True}
    stats = {job["name"]: job for job in client.get(f"{API}/jobs", headers=as_["viewer"]).get_json()["items"]}
    assert stats["retention"]["paused"] is True
    assert client.post(f"{API}/jobs/retention/resume", headers=as_["admin"]).get_json()["paused"] is False
    assert [a.action for a in AuditLog.select().order_by(AuditLog.id)] == ["job_pause", "job_resume"]
    assert client.post(f"{API}/jobs/nope/pause", headers=as_["admin"]).status_code == 404


# --- reconciliation ---------------------------------------------------------------------------------------

def test_statement_upload_limits_and_roles(client, as_):
    url = f"{API}/reconciliation/statements"
    csv = b"Receipt No.,Completion Time\n" + b"x" * 100_000  # beyond the app-wide 64 KiB, within 20 MB
    assert statuses(client, "post", url, {r: as_[r] for r in (None, "merchant", "viewer")}, data=csv,
                    content_type="text/csv") == {None: 401, "merchant": 403, "viewer": 403}
    assert client.post(url, data=csv, content_type="text/csv", headers=as_["operator"]).status_code != 413
    huge = client.post(url, data=b"x" * (20 * 1024 * 1024 + 1), content_type="text/csv", headers=as_["operator"])
    assert huge.status_code == 413 and "error" in huge.get_json()
    assert client.post(url, json={"a": 1}, headers=as_["operator"]).status_code == 415
    empty = client.post(url, data={}, content_type="multipart/form-data", headers=as_["operator"])
    assert empty.status_code == 400


def test_a_statement_over_the_app_wide_body_limit_reaches_its_route(client, as_):
    """A real statement of a few hundred KB, as a file and as a raw body, is read in full (it used to be
    drained by the 64 KiB guard and reach the route empty)."""
    from bench.recon_data import make_dataset

    data = make_dataset(1500).csv_bytes
    assert len(data) > 200 * 1024
    url = f"{API}/reconciliation/statements"
    dry = client.post(url, query_string={"dry_run": 1}, data={"file": (io.BytesIO(data), "big.csv")},
                      content_type="multipart/form-data", headers=as_["operator"])
    assert dry.status_code == 200, dry.get_json()
    assert dry.get_json()["lines"] == 1500
    raw = client.post(url, query_string={"dry_run": 1}, data=data, content_type="text/csv", headers=as_["operator"])
    assert raw.status_code == 200 and raw.get_json()["lines"] == 1500
    elsewhere = client.post(f"{API}/payment-requests", data=b"{" + b" " * 70_000 + b"}",
                            content_type="application/json", headers=as_["operator"])
    assert elsewhere.status_code == 413  # other routes keep the 64 KiB limit


@pytest.fixture
def recon():
    return pytest.importorskip("gateway.reconciliation.service")


def test_statement_upload_then_run_then_resolve(client, as_, recon):
    text = fixture_text("mpesa_statement.csv").encode()
    response = client.post(f"{API}/reconciliation/statements", data={"file": (io.BytesIO(text), "nov.csv")},
                           content_type="multipart/form-data", headers=as_["operator"])
    assert response.status_code == 201, response.get_json()
    summary = response.get_json()
    assert summary["filename"] == "nov.csv" and summary["uploaded_by"] == "staff:operator" and summary["lines"] > 0
    again = client.post(f"{API}/reconciliation/statements", data=text, content_type="text/csv", headers=as_["admin"])
    assert again.status_code == 201 and again.get_json()["id"] == summary["id"]
    run_url = f"{API}/reconciliation/runs/{summary['id']}"
    assert client.get(run_url, headers=as_["merchant"]).status_code == 403
    items, cursor = [], None
    while True:
        body = client.get(run_url, query_string={"limit": 1, **({"cursor": cursor} if cursor else {})},
                          headers=as_["viewer"]).get_json()
        assert body["run"]["id"] == summary["id"]
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(items) == summary["exceptions"] > 0 and len({e["id"] for e in items}) == len(items)
    resolve = f"{API}/reconciliation/exceptions/{items[0]['id']}/resolve"
    assert client.post(resolve, json={"note": "ok"}, headers=as_["viewer"]).status_code == 403
    assert client.post(resolve, json={}, headers=as_["operator"]).status_code == 400
    done = client.post(resolve, json={"note": "paid by cheque"}, headers=as_["operator"])
    assert done.status_code == 200 and done.get_json()["status"] == "RESOLVED"
    assert done.get_json()["resolved_by"] == "staff:operator"
    assert client.post(resolve, json={"note": "again"}, headers=as_["operator"]).status_code == 409
    assert client.get(run_url, query_string={"status": "open"}, headers=as_["viewer"]).get_json()["items"][0][
        "status"] == "OPEN"


def test_a_dry_run_summarises_the_sample_statement_and_writes_nothing(client, as_, recon):
    """?dry_run=1 shows what the import would do; the same upload without it commits exactly that."""
    from shared.models import ReconException, StatementImport, StatementLine

    text = fixture_text("mpesa_statement.csv").encode()
    url = f"{API}/reconciliation/statements"
    tables = (StatementImport, StatementLine, ReconException, Payment, Notification, Alert, AuditLog)
    with db.connection_context():
        before = [m.select().count() for m in tables]
    preview = client.post(url, query_string={"dry_run": "1"}, data=text, content_type="text/csv",
                          headers=as_["operator"])
    assert preview.status_code == 200, preview.get_json()
    shown = preview.get_json()
    assert shown["dry_run"] is True and shown["already_imported"] is False and "id" not in shown
    assert shown["lines"] > 0 and shown["unknown_money"]["count"] == shown["lines"]  # an empty Lipa knows none
    assert shown["unknown_money"]["amount"] > 0 and shown["would_settle"] == 0
    with db.connection_context():
        assert [m.select().count() for m in tables] == before
    done = client.post(url, data=text, content_type="text/csv", headers=as_["operator"]).get_json()
    assert (done["lines"], done["matched"], done["exceptions"]) == (shown["lines"], shown["matched"],
                                                                    shown["exceptions"])
    assert done["exceptions_by_kind"] == shown["exceptions_by_kind"]
    again = client.post(url, query_string={"dry_run": "1"}, data=text, content_type="text/csv",
                        headers=as_["operator"]).get_json()
    assert again["already_imported"] is True and again["id"] == done["id"]
    assert client.post(url, query_string={"dry_run": "maybe"}, data=text, content_type="text/csv",
                       headers=as_["operator"]).status_code == 400
    assert client.post(url, query_string={"dry_run": "1"}, data=text, content_type="text/csv",
                       headers=as_["viewer"]).status_code == 403


def test_a_bad_statement_names_line_and_column(client, as_, recon):
    bad = "Receipt No.,Completion Time,Transaction Status,Paid In\nRKT1,not a time,Completed,10.00\n"
    response = client.post(f"{API}/reconciliation/statements", data=bad, content_type="text/csv",
                           headers=as_["operator"])
    assert response.status_code == 400
    message = response.get_json()["error"]["message"]
    assert "Line 2" in message and "column" in message


def test_unknown_runs_and_exceptions_are_404(client, as_, recon):
    assert client.get(f"{API}/reconciliation/runs/999", headers=as_["viewer"]).status_code == 404
    assert client.get(f"{API}/reconciliation/runs/1", headers=as_[None]).status_code == 401
    url = f"{API}/reconciliation/exceptions/999/resolve"
    assert client.post(url, json={"note": "ok"}, headers=as_["operator"]).status_code == 404
