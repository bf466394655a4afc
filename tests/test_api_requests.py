"""/api/v1/payment-requests: create (merchant or operator), read own, cancel with webhook, list with cursor."""
import json

import pytest

from shared.models import AuditLog, Notification, PaymentRequest
from tests.helpers import staff_headers

URL = "/api/v1/payment-requests"
BILL = {"amount": 1500, "description": "School fees term 2", "account": "adm1042"}


@pytest.fixture
def heads(conn):
    """Authorization headers for each staff role and two merchants."""
    return staff_headers(merchants={"School": "School", "Other": "Other"})


def test_merchant_creates_an_open_request_with_a_code(client, heads):
    body = {**BILL, "phone": "0712345678", "expires_in": 3600, "callback_url": "https://school.example/hook"}
    response = client.post(URL, headers=heads["School"], json=body)
    assert response.status_code == 201
    got = response.get_json()
    assert (got["status"], got["amount"], got["account"], got["description"]) == ("OPEN", 1500, "ADM1042",
                                                                                 "School fees term 2")
    assert len(got["code"]) == 6 and got["code"].isdigit() and got["expires_at"].endswith("Z")
    assert got["allowed_transitions"] == ["CANCELLED", "EXPIRED", "PAID"] and got["status_message"]
    assert got["callback_url"] == body["callback_url"] and got["created_at"].endswith("Z")
    assert PaymentRequest.get_by_id(got["id"]).merchant.name == "School"


def test_who_may_create(client, heads):
    assert client.post(URL, headers=heads["operator"], json=BILL).status_code == 201
    assert client.post(URL, headers=heads["viewer"], json=BILL).status_code == 403
    assert client.post(URL, json=BILL).status_code == 401


@pytest.mark.parametrize("body,code", [
    ({"account": "A1"}, "missing_field"), ({**BILL, "amount": 0}, "amount_out_of_range"),
    ({**BILL, "account": "no spaces"}, "invalid_account"), ({**BILL, "expires_in": 5}, "invalid_expires_in"),
    ({**BILL, "callback_url": "ftp://x"}, "invalid_url"), ({**BILL, "colour": "red"}, "unknown_field"),
    ({**BILL, "phone": "12"}, "invalid_phone"), ({**BILL, "description": 7}, "invalid_description"),
])
def test_create_validation(client, heads, body, code):
    response = client.post(URL, headers=heads["School"], json=body)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == code


def test_create_needs_json(client, heads):
    response = client.post(URL, headers=heads["School"], data="amount=1", content_type="text/plain")
    assert response.status_code == 415
    big = json.dumps({**BILL, "description": "x" * 70_000})
    assert client.post(URL, headers=heads["School"], data=big, content_type="application/json").status_code == 413


def test_idempotency_key_replays_and_conflicts(client, heads):
    headers = {**heads["School"], "Idempotency-Key": "term2-1042"}
    first = client.post(URL, headers=headers, json=BILL)
    again = client.post(URL, headers=headers, json=BILL)
    assert first.status_code == again.status_code == 201 and first.get_json() == again.get_json()
    conflict = client.post(URL, headers=headers, json={**BILL, "amount": 1600})
    assert conflict.status_code == 409 and conflict.get_json()["error"]["code"] == "idempotency_conflict"
    other = client.post(URL, headers={**heads["Other"], "Idempotency-Key": "term2-1042"}, json=BILL)
    assert other.status_code == 201 and other.get_json()["id"] != first.get_json()["id"]
    assert PaymentRequest.select().count() == 2


def test_a_merchant_reads_only_its_own(client, heads):
    made = client.post(URL, headers=heads["School"], json=BILL).get_json()
    assert client.get(f"{URL}/{made['id']}", headers=heads["School"]).get_json() == made
    assert client.get(f"{URL}/{made['id']}", headers=heads["Other"]).status_code == 404
    assert client.get(f"{URL}/{made['id']}", headers=heads["viewer"]).status_code == 200
    assert client.get(f"{URL}/{made['id']}").status_code == 401
    assert client.get(f"{URL}/999", headers=heads["viewer"]).status_code == 404


def test_cancel_queues_the_webhook_once(client, heads):
    made = client.post(URL, headers=heads["School"], json={**BILL, "callback_url": "https://school.example/h"})
    rid = made.get_json()["id"]
    assert client.post(f"{URL}/{rid}/cancel", headers=heads["Other"]).status_code == 404
    assert client.post(f"{URL}/{rid}/cancel", headers=heads["viewer"]).status_code == 403
    response = client.post(f"{URL}/{rid}/cancel", headers=heads["School"], json={"reason": "paid in cash"})
    assert response.status_code == 200 and response.get_json()["status"] == "CANCELLED"
    hook = Notification.get(Notification.channel == "webhook")
    assert (hook.kind, hook.request_id) == ("payment_request.cancelled", rid)
    assert hook.recipient == "https://school.example/h"
    row = AuditLog.get(AuditLog.action == "cancel")
    assert (row.target_type, row.target_id, row.reason, row.actor) == ("payment_request", str(rid), "paid in cash",
                                                                       "merchant:School")
    again = client.post(f"{URL}/{rid}/cancel", headers=heads["operator"])
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "invalid_transition"
    assert Notification.select().count() == 1


def test_list_pages_newest_first(client, heads):
    made = [client.post(URL, headers=heads["operator"], json=BILL).get_json()["id"] for _ in range(12)]
    client.post(f"{URL}/{made[0]}/cancel", headers=heads["operator"])
    seen, cursor = [], None
    while True:
        query = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        body = client.get(URL, headers=heads["viewer"], query_string=query).get_json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == made[::-1]
    cancelled = client.get(f"{URL}?status=cancelled", headers=heads["viewer"]).get_json()["items"]
    assert [item["id"] for item in cancelled] == [made[0]]
    assert client.get(URL, headers=heads["School"]).get_json()["items"] == []  # staff made them all
    for query in ("status=LOST", "limit=0", "cursor=garbage", "colour=red"):
        assert client.get(f"{URL}?{query}", headers=heads["viewer"]).status_code == 400
