"""Issue 13: GET /api/v1/audit lists every audit row (admin only): who, what, when, why, filtered, by cursor."""
from __future__ import annotations

from datetime import timedelta

import pytest

from shared.db import db
from shared.models import AuditLog
from shared.timeutil import utcnow
from tests.helpers import staff_headers

URL = "/api/v1/audit"


@pytest.fixture
def heads(quiet_app):
    """Every role and a merchant, signed in on the quiet app (rate limits off)."""
    with db.connection_context():
        yield staff_headers(merchants={"merchant": "Shop"})


@pytest.fixture
def client(quiet_app):
    return quiet_app.test_client()


def seed() -> list[int]:
    """Rows as jobs, alerts, statements and staff write them, oldest first, a day apart."""
    start = utcnow() - timedelta(days=5)
    rows = [("staff:amina", "pause", "job", "retention", "maintenance window"),
            ("staff:amina", "ack", "alert", "7", "seen"),
            ("staff:brian", "upload", "statement", "3", ""),
            ("auto-refund", "refund", "payment", "12", "unexpected money"),
            ("staff:brian", "resolve", "payment", "12", "customer showed the SMS")]
    return [AuditLog.create(actor=a, action=b, target_type=c, target_id=d, reason=e, details={"n": i},
                            created_at=start + timedelta(days=i)).id for i, (a, b, c, d, e) in enumerate(rows)]


def ids(response) -> list[int]:
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_only_admins_read_the_audit_log(client, heads):
    seed()
    assert client.get(URL).status_code == 401
    for who in ("viewer", "operator", "merchant"):
        assert client.get(URL, headers=heads[who]).status_code == 403
    body = client.get(URL, headers=heads["admin"]).get_json()
    first = body["items"][0]
    assert first["actor"] == "staff:brian" and first["action"] == "resolve" and first["reason"] == \
        "customer showed the SMS" and first["target_type"] == "payment" and first["created_at"].endswith("Z")


def test_filters_and_cursor(client, heads):
    made = seed()
    admin = heads["admin"]
    assert ids(client.get(URL, headers=admin, query_string={"actor": "staff:amina"})) == made[1::-1]
    assert ids(client.get(URL, headers=admin, query_string={"target_type": "payment", "target_id": "12"})) == \
        [made[4], made[3]]
    assert ids(client.get(URL, headers=admin, query_string={"action": "upload"})) == [made[2]]
    since = (utcnow() - timedelta(days=3, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(client.get(URL, headers=admin, query_string={"from": since})) == made[:1:-1]
    seen, cursor = [], None
    while True:
        body = client.get(URL, headers=admin, query_string={"limit": 2, **({"cursor": cursor} if cursor else {})})
        seen += ids(body)
        cursor = body.get_json()["next_cursor"]
        if not cursor:
            break
    assert seen == made[::-1]
    for bad in ({"colour": "red"}, {"from": "yesterday"}, {"cursor": "garbage"}, {"actor": "x" * 65},
                {"from": "2026-01-02", "to": "2026-01-01"}):
        refused = client.get(URL, headers=admin, query_string=bad)
        assert refused.status_code == 400 and refused.get_json()["error"]["code"] in ("invalid_filter",
                                                                                      "invalid_cursor")


def test_session_changes_are_in_the_audit_log(client, heads):
    assert client.post("/api/v1/auth/logout", headers=heads["operator"]).status_code == 204
    rows = client.get(URL, headers=heads["admin"], query_string={"action": "logout"}).get_json()["items"]
    assert [(r["actor"], r["target_type"]) for r in rows] == [("staff:operator", "staff")]
