"""The desktop app's Qt-free core against the real gateway: the API client, CSV export and settings."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone

import pytest
import requests

from admin_app.core.client import ApiClient, ApiError, ConnectionLost
from admin_app.core.export import export_payments, write_csv
from admin_app.core.models import Page, Payment, PaymentDetail, PaymentFilters, TimelineEntry
from admin_app.core.settings import DEFAULT_GATEWAY_URL, AppSettings, JsonFileStore, MemoryStore
from shared.timeutil import NAIROBI, utcnow
from tests.factories import PASSWORDS, add_events, add_staff, seed  # noqa: F401 - builders shared
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.server
PHONE = "254712345678"








@pytest.fixture
def staff(live):
    """One staff member per role on the live gateway."""
    return add_staff()


@pytest.fixture
def login(live, staff):
    """login(role) -> a signed-in ApiClient."""
    def make(role: str) -> ApiClient:
        client = ApiClient(live.url, timeout=10)
        client.login(role, staff[role])
        return client
    return make


def test_login_keeps_the_token_and_role(live, staff):
    client = ApiClient(live.url + "/")
    session = client.login("operator", staff["operator"])
    assert (session.role, session.username, client.role) == ("operator", "operator", "operator")
    assert session.token.startswith("lps_") and session.expires_at.tzinfo is not None
    with pytest.raises(ApiError) as caught:
        ApiClient(live.url).login("operator", "wrong-password")
    assert (caught.value.status, caught.value.code) == (401, "invalid_credentials")
    assert caught.value.message == "Wrong username or password."


def test_list_filters_and_cursor(live, login):
    start = utcnow() - timedelta(days=3)
    seed(25, start=start)
    failed = seed(3, status="FAILED", start=start + timedelta(days=1))
    flagged = seed(1, status="PROCESSING", flagged=True, flag_reason="velocity", phone="254722000111",
                   checkout_request_id="ws_f")
    client = login("viewer")
    seen, cursor = [], None
    while True:
        page = client.payments(PaymentFilters(), cursor, limit=7)
        assert isinstance(page, Page) and all(isinstance(p, Payment) for p in page.items)
        seen += [p.id for p in page.items]
        cursor = page.next_cursor
        if not cursor:
            break
    assert len(seen) == 29 and seen == sorted(seen, reverse=True)
    assert [p.id for p in client.payments(PaymentFilters(status="FAILED")).items] == failed[::-1]
    assert [p.id for p in client.payments(PaymentFilters(flagged=True)).items] == flagged
    assert [p.id for p in client.payments({"phone": "0722 000 111"}).items] == flagged
    day = nairobi_date(start + timedelta(days=1))
    assert [p.id for p in client.payments(PaymentFilters(date_from=day, date_to=day)).items] == failed[::-1]
    reference = client.payments(PaymentFilters(status="FAILED")).items[0].reference
    assert [p.reference for p in client.payments(PaymentFilters(q=reference.lower())).items] == [reference]
    assert len(list(client.iter_payments(PaymentFilters(status="COMPLETED"), page_size=10))) == 25


def test_detail_has_the_timeline_in_order(live, login):
    payment_id = seed(status="COMPLETED", mpesa_receipt="QK1ABC")[0]
    add_events(payment_id)
    detail = login("viewer").payment(payment_id)
    assert isinstance(detail, PaymentDetail) and detail.payment.mpesa_receipt == "QK1ABC"
    assert all(isinstance(e, TimelineEntry) for e in detail.events)
    assert [e.summary for e in detail.events] == ["Payment created by test",
                                                  "Sent the M-Pesa prompt to the customer's phone",
                                                  "test confirmed the payment, receipt QK1ABC"]
    assert [e.at for e in detail.events] == sorted(e.at for e in detail.events)
    assert detail.events[1].details["payload"] == {"ResponseCode": "0"} and '"ResponseCode": "0"' in \
        detail.events[1].pretty()
    assert detail.payment.allowed_transitions == ("REFUND_PENDING", "SETTLED")


def test_requery_asks_mpesa_and_applies_the_answer(live, login):
    operator = login("operator")
    created = operator.post("/api/v1/payments", {"phone": PHONE, "amount": 55, "account": "ACC9"})  # no callback
    wait_for(lambda: operator.payment(created["id"]).payment.status == "PROCESSING")

    def decided():
        """M-Pesa says "still processing" until the simulated customer has answered."""
        answer = operator.requery(created["id"])
        return None if answer["query"]["pending"] else answer

    answer = wait_for(decided)
    assert answer["query"]["result_code"] == "0" and answer["payment"].status == "COMPLETED"
    kinds = [e.details.get("kind") for e in operator.payment(created["id"]).events]
    assert "stk_query" in kinds


def test_resend_retry_refund_resolve_and_receipts(live, login):
    paid, failed, open_ = (seed(status="COMPLETED", mpesa_receipt="QK5RCPT", amount=1000)[0],
                           seed(status="FAILED", amount=300)[0],
                           seed(status="PROCESSING", checkout_request_id="ws_open", phone="254733000222")[0])
    operator, admin = login("operator"), login("admin")
    assert operator.resend_receipt(paid)["notification"]["kind"] == "payment_completed"
    retried = operator.retry(failed)
    assert retried.retry_of == failed and retried.amount == 300
    first, second = admin.receipt(paid, "pdf"), admin.receipt(paid, "text", 48)
    assert first.startswith(b"%PDF") and b"COPY" in second and b"QK5RCPT" in second
    refund = admin.refund(paid, 400, "double charge")
    assert (refund["amount"], refund["payment_id"]) == (400, paid)
    assert admin.payment(paid).payment.status == "REFUND_PENDING"
    resolved = admin.resolve(open_, "EXPIRED", "customer phone off")["payment"]
    assert resolved.status == "EXPIRED" and resolved.allowed_transitions == ("COMPLETED",)
    checking = admin.resolve(open_, "COMPLETED", "the customer shows the SMS", receipt="QK9HAND01")
    assert checking["verification"]["receipt"] == "QK9HAND01"  # M-Pesa is asked first: nothing moved yet
    assert admin.payment(open_).payment.status == "EXPIRED"
    with pytest.raises(ApiError) as caught:
        admin.resolve(open_, "REFUNDED", "no")
    assert (caught.value.status, caught.value.code) == (409, "refund_only")
    live.app.extensions["lipa"].tasks.drain()


@pytest.mark.parametrize("role,action", [("viewer", "requery"), ("viewer", "retry"), ("operator", "refund"),
                                         ("operator", "resolve")])
def test_a_refused_role_is_403(live, login, role, action):
    payment_id = seed(status="FAILED")[0]
    calls = {"requery": lambda c: c.requery(payment_id), "retry": lambda c: c.retry(payment_id),
             "refund": lambda c: c.refund(payment_id, 10, "why"),
             "resolve": lambda c: c.resolve(payment_id, "COMPLETED", "why")}
    with pytest.raises(ApiError) as caught:
        calls[action](login(role))
    assert (caught.value.status, caught.value.code) == (403, "forbidden")


def test_errors_carry_status_and_code(live, login):
    viewer = login("viewer")
    for call, status, code in ((lambda: viewer.payment(999_999), 404, "not_found"),
                               (lambda: viewer.payments({"status": "BOGUS"}), 400, "invalid_filter"),
                               (lambda: viewer.payments(cursor="garbage"), 400, "invalid_cursor"),
                               (lambda: ApiClient(live.url).payments(), 401, "unauthorized")):
        with pytest.raises(ApiError) as caught:
            call()
        assert (caught.value.status, caught.value.code) == (status, code) and caught.value.message


class CountingSession(requests.Session):
    """A real session that counts the requests it sends."""

    def __init__(self):
        super().__init__()
        self.sent = []

    def request(self, method, url, **kwargs):
        self.sent.append(method)
        return super().request(method, url, **kwargs)


def test_gateway_down_is_connection_lost_and_only_gets_are_retried():
    session = CountingSession()
    client = ApiClient(f"http://127.0.0.1:{free_port()}", session=session, timeout=2, retries=2)
    waits = []
    client.sleep = waits.append
    with pytest.raises(ConnectionLost, match="Cannot reach the gateway"):
        client.payments()
    assert session.sent == ["GET"] * 3 and len(waits) == 2 and all(0 <= w <= 5 for w in waits)
    with pytest.raises(ConnectionLost):
        client.refund(1, 10, "x")
    with pytest.raises(ConnectionLost):
        client.login("a", "b")
    assert session.sent == ["GET"] * 3 + ["POST"] * 2 and len(waits) == 2


class ScriptedSession:
    """A transport answering from a script of (status, body) pairs."""

    def __init__(self, *answers):
        self.answers, self.sent = list(answers), []

    def request(self, method, url, **kwargs):
        self.sent.append((method, url))
        status, body = self.answers.pop(0)
        response = requests.Response()
        response.status_code, response._content = status, body.encode()
        return response


def test_gets_are_retried_on_502_503_504_but_posts_are_not():
    page = '{"items": [], "next_cursor": null}'
    session = ScriptedSession((503, "busy"), (502, "<html>bad gateway</html>"), (200, page))
    client = ApiClient("http://gateway.test", session=session)
    client.sleep = lambda _s: None
    assert client.payments().items == [] and len(session.sent) == 3
    session = ScriptedSession((503, '{"error": {"code": "provider_unavailable", "message": "Daraja is down"}}'))
    client = ApiClient("http://gateway.test", session=session)
    with pytest.raises(ApiError) as caught:
        client.requery(5)
    assert (caught.value.status, caught.value.code, caught.value.message) == (503, "provider_unavailable",
                                                                              "Daraja is down")
    session = ScriptedSession((504, "<html>timeout</html>"), (504, "<html>timeout</html>"), (504, "gone"))
    with pytest.raises(ApiError) as caught:
        ApiClient("http://gateway.test", session=session, retries=2, backoff=0).payment(3)
    assert (caught.value.status, caught.value.code) == (504, "http_504") and len(session.sent) == 3


def test_csv_export_writes_every_column_and_defuses_formulas(tmp_path):
    rows = [Payment.from_json({"id": 1, "reference": "LP1", "phone": PHONE, "amount": 1500, "account": "=cmd|'/c'",
                               "status": "COMPLETED", "created_at": "2024-05-01T08:00:00Z", "flagged": True}),
            Payment.from_json({"id": 2, "reference": "LP2", "phone": PHONE, "amount": 20, "account": "ACC",
                               "status": "FAILED", "mpesa_receipt": None})]
    out = io.StringIO()
    assert write_csv(rows, out) == 2
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert table[0]["account"] == "'=cmd|'/c'" and table[0]["created_at_eat"] == "2024-05-01 11:00:00"
    assert table[0]["amount_kes"] == "1500" and table[0]["flagged"] == "yes" and table[1]["mpesa_receipt"] == ""
    path = tmp_path / "payments.csv"
    assert export_payments(iter(rows), path) == 2
    assert path.read_bytes().startswith(b"\xef\xbb\xbfid,created_at_eat,reference")


def test_settings_remember_url_and_username_but_nothing_else(tmp_path):
    settings = AppSettings(MemoryStore())
    assert (settings.gateway_url, settings.last_username) == (DEFAULT_GATEWAY_URL, "")
    stored = AppSettings(JsonFileStore(tmp_path / "dir" / "settings.json"))
    stored.remember_login("http://10.0.0.5:8000/", "amina")
    again = AppSettings(JsonFileStore(tmp_path / "dir" / "settings.json"))
    assert (again.gateway_url, again.last_username) == ("http://10.0.0.5:8000", "amina")
    assert "password" not in (tmp_path / "dir" / "settings.json").read_text()


def nairobi_date(naive_utc: datetime) -> date:
    """The Nairobi day a stored (naive UTC) timestamp falls on."""
    return naive_utc.replace(tzinfo=timezone.utc).astimezone(NAIROBI).date()


def test_the_date_filter_reads_nairobi_days(live, login):
    """01:30 EAT on 5 May is 22:30 UTC on 4 May: the screen's "5 May" must find it, "4 May" must not."""
    late = seed(1, start=datetime(2024, 5, 4, 22, 30))
    seed(1, start=datetime(2024, 5, 4, 20, 30))  # 23:30 EAT on 4 May
    client = login("viewer")
    may5 = client.payments(PaymentFilters(date_from=date(2024, 5, 5), date_to=date(2024, 5, 5))).items
    may4 = client.payments(PaymentFilters(date_from=date(2024, 5, 4), date_to=date(2024, 5, 4))).items
    assert [p.id for p in may5] == late and late[0] not in [p.id for p in may4] and len(may4) == 1


def test_filters_become_query_arguments():
    filters = PaymentFilters(status="FAILED", phone=" 0712 ", q="", date_from=date(2024, 5, 1),
                             date_to=date(2024, 5, 2), flagged=False)
    assert filters.to_params() == {"status": "FAILED", "phone": "0712", "from": "2024-04-30T21:00:00Z",
                                   "to": "2024-05-02T21:00:00Z", "flagged": "false"}
    assert PaymentFilters().to_params() == {}
