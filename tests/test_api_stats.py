"""GET /api/v1/stats: every number equals the same count done in Python over a seeded set."""
import math
import random
from collections import Counter
from datetime import datetime, timedelta

import pytest

from gateway.backoffice import auth, stats
from shared.db import db
from shared.errors import InvalidInput
from shared.models import Notification, Payment, PaymentEvent
from shared.states import PaymentStatus
from shared.timeutil import utcnow
from tests.conftest import QuietDispatcher, bearer_headers

DAY_START = datetime(2024, 4, 30, 21, 0)  # 2024-05-01 00:00 in Nairobi, as UTC
SUCCESS = {"COMPLETED", "SETTLED", "REFUND_PENDING", "REFUNDED"}
UNPAID = {"FAILED", "CANCELLED", "EXPIRED"}
CODES = {"FAILED": ["1", "2001", "1037", None], "CANCELLED": ["1032"]}


@pytest.fixture
def app(make_app):
    return make_app(dispatcher=QuietDispatcher())


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def tokens(client):
    """A bearer header per role, and one for a merchant key."""
    return bearer_headers(client)


def _payment(n: int, status: str, created_at: datetime, rng: random.Random, **fields) -> dict:
    return {"reference": f"LP{n:08d}", "phone": f"2547{n:08d}", "amount": rng.randint(10, 5000),
            "account": "ACC1", "channel": "ussd", "status": status, "created_at": created_at,
            "updated_at": created_at, "result_code": rng.choice(CODES.get(status, [None])), **fields}


def seed(count: int = 300) -> list[dict]:
    """Payments spread over 2024-05-01 (Nairobi) plus some outside it; each decided one with events."""
    rng = random.Random(7)
    statuses = [s.value for s in PaymentStatus if s.value not in ("PENDING", "PROCESSING")]
    rows = [_payment(n, rng.choice(statuses), DAY_START + timedelta(seconds=rng.randint(0, 86399)), rng)
            for n in range(count)]
    rows += [_payment(count + n, "COMPLETED", DAY_START - timedelta(minutes=n + 1), rng) for n in range(5)]
    rows += [_payment(count + 10, "COMPLETED", DAY_START + timedelta(days=1), rng)]
    with db.atomic():
        Payment.insert_many(rows).execute()
        events = []
        for payment in Payment.select():
            row = next(r for r in rows if r["reference"] == payment.reference)
            row["id"] = payment.id
            if payment.status in ("COMPLETED", "FAILED", "CANCELLED", "EXPIRED"):
                events += _events(payment, rng, row)
        PaymentEvent.insert_many(events).execute()
    return rows


def _events(payment: Payment, rng: random.Random, row: dict) -> list[dict]:
    started = payment.created_at + timedelta(seconds=2)
    row["lag"] = rng.randint(1000, 120000) / 1000
    common = {"payment": payment.id, "kind": "transition", "actor": "test"}
    return [{**common, "from_status": "PENDING", "to_status": "PROCESSING", "created_at": started},
            {**common, "from_status": "PROCESSING", "to_status": payment.status,
             "created_at": started + timedelta(seconds=row["lag"])}]


def seed_notifications(payment_id: int) -> Counter:
    statuses = ["DELIVERED"] * 7 + ["SENT"] * 2 + ["FAILED"] * 3 + ["QUEUED", "SUPPRESSED"]
    with db.atomic():
        for n, status in enumerate(statuses):
            Notification.create(channel="sms", kind="payment_completed", payment=payment_id, recipient="254700000000",
                                body="x", status=status, created_at=DAY_START + timedelta(hours=n))
        Notification.create(channel="sms", kind="reply", recipient="254700000000", body="x", status="FAILED",
                            created_at=DAY_START - timedelta(hours=1))
    return Counter(statuses)


def expected_lag(rows, pct):
    in_day = [r for r in rows if "lag" in r and r["status"] != "EXPIRED"
              and DAY_START <= r["created_at"] + timedelta(seconds=2 + r["lag"]) < DAY_START + timedelta(days=1)]
    lags = sorted(r["lag"] for r in in_day)
    return round(lags[math.ceil(pct / 100 * len(lags)) - 1], 3), len(lags)


def test_stats_equal_python_counts(client, tokens):
    with db.connection_context():
        rows = seed()
        notes = seed_notifications(rows[0]["id"])
    response = client.get("/api/v1/stats?from=2024-05-01&to=2024-05-01", headers=tokens["viewer"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    day = [r for r in rows if DAY_START <= r["created_at"] < DAY_START + timedelta(days=1)]
    by_status = Counter(r["status"] for r in day)
    assert body["payments"]["count"] == len(day) == 300
    assert body["payments"]["amount"] == sum(r["amount"] for r in day)
    for status in PaymentStatus:
        assert body["payments"]["by_status"][status.value] == {
            "count": by_status[status.value], "amount": sum(r["amount"] for r in day if r["status"] == status.value)}
    ok, bad = sum(by_status[s] for s in SUCCESS), sum(by_status[s] for s in UNPAID)
    assert body["decided"] == ok + bad
    assert body["success_rate"] == round(ok / (ok + bad), 4) and body["failure_rate"] == round(bad / (ok + bad), 4)
    codes = Counter(r["result_code"] or "unknown" for r in day if r["status"] in ("FAILED", "CANCELLED"))
    assert {c["result_code"]: c["count"] for c in body["failures_by_result_code"]} == dict(codes)
    assert [c["count"] for c in body["failures_by_result_code"]] == sorted(codes.values(), reverse=True)
    assert next(c for c in body["failures_by_result_code"] if c["result_code"] == "1032")["description"]
    p50, n = expected_lag(rows, 50)
    assert body["callback_lag_s"] == {"p50": p50, "p95": expected_lag(rows, 95)[0], "samples": n}
    assert body["notifications"]["by_status"] == dict(notes)
    assert body["notifications"]["delivery_rate"] == round(7 / 12, 4)
    assert_hourly(body["hourly"], day)


def assert_hourly(hourly, day):
    assert len(hourly) == 24 and hourly[0]["hour"] == "2024-04-30T21:00:00Z"
    for index, hour in enumerate(hourly):
        start = DAY_START + timedelta(hours=index)
        rows = [r for r in day if start <= r["created_at"] < start + timedelta(hours=1)]
        paid = [r for r in rows if r["status"] in SUCCESS]
        assert hour == {"hour": hour["hour"], "count": len(rows), "completed": len(paid),
                        "amount_completed": sum(r["amount"] for r in paid)}


def test_default_period_is_today_with_pending_and_stuck(client, tokens):
    now = utcnow()
    rng = random.Random(1)
    with db.connection_context():
        Payment.insert_many([
            _payment(1, "PROCESSING", now, rng, active_phone="254700000001"),
            _payment(2, "PENDING", now - timedelta(hours=2), rng, active_phone="254700000002"),
            _payment(3, "COMPLETED", now, rng),
            _payment(4, "COMPLETED", now - timedelta(days=3), rng),
        ]).execute()
    body = client.get("/api/v1/stats", headers=tokens["viewer"]).get_json()
    assert body["pending"] == 2 and body["stuck"] == 1
    assert body["payments"]["by_status"]["COMPLETED"]["count"] == 1
    assert body["callback_lag_s"] == {"p50": None, "p95": None, "samples": 0}
    assert body["timezone"] == "Africa/Nairobi" and len(body["hourly"]) == 24


def test_empty_period_has_no_rates(client, tokens):
    body = client.get("/api/v1/stats?from=2020-01-01&to=2020-01-02", headers=tokens["viewer"]).get_json()
    assert body["success_rate"] is None and body["notifications"]["delivery_rate"] is None
    assert body["payments"]["count"] == 0 and len(body["hourly"]) == 48


@pytest.mark.parametrize("query", [
    "from=2024-13-01", "from=yesterday", "to=2024-02-30", "from=2024-05-02&to=2024-05-01",
    "from=2024-01-01&to=2024-06-01", "from=0001-01-01&to=0001-01-02", "from=9999-12-31&to=9999-12-31",
])
def test_invalid_periods_are_400(client, tokens, query):
    response = client.get(f"/api/v1/stats?{query}", headers=tokens["viewer"])
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_period"


def test_roles(client, tokens):
    assert client.get("/api/v1/stats").status_code == 401
    assert client.get("/api/v1/stats", headers=tokens["merchant"]).status_code == 403
    for role in auth.ROLES:
        assert client.get("/api/v1/stats", headers=tokens[role]).status_code == 200


def test_period_parsing_in_nairobi_time():
    assert stats.parse_period({"from": "2024-05-01", "to": "2024-05-01"}) == (DAY_START, DAY_START + timedelta(days=1))
    since, until = stats.parse_period({"from": "2024-05-01T08:00", "to": "2024-05-01T09:30:00Z"})
    assert since == datetime(2024, 5, 1, 5, 0) and until == datetime(2024, 5, 1, 9, 30)
    assert stats.parse_period({}, now=datetime(2024, 5, 1, 22, 0))[0] == datetime(2024, 5, 1, 21, 0)
    with pytest.raises(InvalidInput):
        stats.parse_period({"from": "2024-05-01T10:00", "to": "2024-05-01T09:00"})


def test_percentile_is_nearest_rank():
    assert stats.percentile([], 50) is None
    assert stats.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert stats.percentile([float(n) for n in range(1, 101)], 95) == 95.0


def test_collected_is_money_paid_in_the_period_net_of_refunds(client, tokens):
    """Failed and cancelled attempts never count; money is dated by completed_at (a statement line's own
    date), not by when the row was created; refunds completed in the period are counted apart."""
    from shared.models import Refund

    inside, before = DAY_START + timedelta(hours=5), DAY_START - timedelta(hours=2)
    with db.atomic():
        def pay(ref, status, amount, created, completed=None, refunded=0):
            return Payment.create(reference=ref, phone="254700000001", amount=amount, account="A", channel="ussd",
                                  status=status, created_at=created, completed_at=completed,
                                  refunded_amount=refunded)

        pay("LPC1", "COMPLETED", 1000, inside, inside)
        pay("LPC2", "SETTLED", 500, inside, inside)
        refunded = pay("LPC3", "REFUNDED", 300, inside, inside, refunded=300)
        partly = pay("LPC4", "COMPLETED", 800, inside, inside, refunded=200)
        pay("LPC5", "COMPLETED", 700, DAY_START + timedelta(days=5), before)  # imported later, paid before
        pay("LPC6", "FAILED", 9000, inside)
        pay("LPC7", "CANCELLED", 4000, inside)
        pay("LPC8", "COMPLETED", 250, before, inside)  # created before the day, paid in it
        for payment, amount, status in ((refunded, 300, "COMPLETED"), (partly, 200, "COMPLETED"),
                                        (partly, 100, "FAILED")):
            Refund.create(payment=payment, amount=amount, reason="r", requested_by="staff:x", status=status,
                          originator_conversation_id=f"oc-{payment.id}-{status}", updated_at=inside)
    body = client.get("/api/v1/stats?from=2024-05-01&to=2024-05-01", headers=tokens["viewer"]).get_json()
    assert body["collected"] == {"count": 5, "amount": 1000 + 500 + 0 + 600 + 250}
    assert body["refunded"] == {"count": 2, "amount": 500}
    assert body["payments"]["amount_is"] == "attempted"
    assert body["payments"]["amount"] == 1000 + 500 + 300 + 800 + 9000 + 4000  # attempts created in the day
