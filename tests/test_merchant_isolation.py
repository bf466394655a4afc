"""Issue 13: a merchant key reads its own payments and payment requests, and only those (404 for the others);
idempotency keys are scoped by the merchant's id, so two merchants' names and keys can never collide."""
import pytest

from shared.models import Merchant, Payment, PaymentRequest
from tests.helpers import staff_headers

PHONE, OTHER_PHONE, THIRD_PHONE = "254712345678", "254712345679", "254712345670"
URL = "/api/v1/payments"


@pytest.fixture
def heads(conn):
    return staff_headers(roles=("viewer", "operator"), merchants={"A": "Acme", "B": "Bolt"})


def create(client, who, phone, **headers):
    response = client.post(URL, headers={**who, **headers}, json={"phone": phone, "amount": 100, "account": "INV1"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def paid_request(merchant: str, phone: str) -> int:
    """A payment that paid merchant's payment request (made by USSD, not through the merchant's key)."""
    request = PaymentRequest.create(code=f"{len(merchant)}{phone[-5:]}", account="BILL", amount=100,
                                    merchant=Merchant.get(Merchant.name == merchant))
    return Payment.create(reference=f"LPR{phone[-6:]}", phone=phone, amount=100, account="BILL", channel="ussd",
                          status="COMPLETED", request=request).id


def listed(client, who, **query) -> list[int]:
    response = client.get(URL, headers=who, query_string=query)
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_a_merchant_lists_and_reads_only_its_own_payments(client, heads):
    mine = create(client, heads["A"], PHONE)
    theirs = create(client, heads["B"], OTHER_PHONE)
    by_request = paid_request("Acme", THIRD_PHONE)
    staff_made = Payment.create(reference="LPSTAFF1", phone="254712000001", amount=5, account="X", channel="staff",
                                status="COMPLETED").id
    assert listed(client, heads["A"]) == [by_request, mine]
    assert listed(client, heads["B"]) == [theirs]
    assert set(listed(client, heads["viewer"])) == {mine, theirs, by_request, staff_made}
    assert listed(client, heads["A"], phone=OTHER_PHONE) == []  # a filter never widens the scope
    for own in (mine, by_request):
        detail = client.get(f"{URL}/{own}", headers=heads["A"])
        assert detail.status_code == 200 and detail.get_json()["id"] == own
        assert "callbacks" not in detail.get_json()  # the staff timeline stays with staff
    for other in (theirs, staff_made, 999999):
        refused = client.get(f"{URL}/{other}", headers=heads["A"])
        assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "not_found"
    assert "events" in client.get(f"{URL}/{theirs}", headers=heads["viewer"]).get_json()


def test_a_merchant_lists_only_its_own_payment_requests(client, heads):
    bill = {"amount": 100, "account": "TERM1"}
    mine = client.post("/api/v1/payment-requests", headers=heads["A"], json=bill).get_json()["id"]
    theirs = client.post("/api/v1/payment-requests", headers=heads["B"], json=bill).get_json()["id"]
    staff = client.post("/api/v1/payment-requests", headers=heads["operator"], json=bill).get_json()["id"]
    for who, expected in (("A", [mine]), ("B", [theirs]), ("viewer", [staff, theirs, mine])):
        body = client.get("/api/v1/payment-requests", headers=heads[who]).get_json()
        assert [item["id"] for item in body["items"]] == expected
    assert client.get(f"/api/v1/payment-requests/{theirs}", headers=heads["A"]).status_code == 404
    assert client.get(f"/api/v1/payment-requests/{mine}", headers=heads["A"]).status_code == 200


def test_idempotency_keys_are_scoped_by_merchant_id_not_name(client, conn):
    """"Acme" + "shop:order-1" and "Acme:shop" + "order-1" once shared the key api:merchant:Acme:shop:order-1,
    and the second merchant got the first one's payment back, with its full phone."""
    heads = staff_headers(roles=("viewer",), merchants={"first": "Acme", "second": "Acme:shop"})
    one = create(client, heads["first"], PHONE, **{"Idempotency-Key": "shop:order-1"})
    two = create(client, heads["second"], OTHER_PHONE, **{"Idempotency-Key": "order-1"})
    assert one != two
    assert Payment.get_by_id(two).phone == OTHER_PHONE
    assert create(client, heads["first"], PHONE, **{"Idempotency-Key": "shop:order-1"}) == one  # replay still works
    assert Payment.select().count() == 2
