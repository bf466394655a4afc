"""The dashboard's Qt-free shaping of ``/stats`` answers, fed with real answers of the stats service."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from admin_app.core.dashboard_data import (
    DashboardData,
    PeriodNumbers,
    by_hour_of_day,
    kes,
    percent,
    seconds,
    success_by_hour,
    today_nairobi,
)
from gateway.backoffice import stats
from shared.timeutil import utcnow
from tests.factories import seed


def summary_now() -> dict:
    since, until = stats.parse_period({})
    return stats.summary(since, until)


def test_numbers_follow_the_stats_answer(conn):
    start = utcnow() - timedelta(seconds=60)
    seed(3, start=start, status="COMPLETED", amount=1000, completed_at=start)
    seed(2, start=start, status="FAILED", result_code="1032", amount=50)
    seed(1, start=start, status="PROCESSING", checkout_request_id="ws_x", amount=70)
    answer = summary_now()
    numbers = PeriodNumbers.from_stats(answer)
    assert (numbers.count, numbers.amount) == (answer["payments"]["count"], answer["payments"]["amount"]) == (6, 3170)
    assert numbers.status("COMPLETED").count == 3 and numbers.status("FAILED").amount == 100
    assert numbers.success_rate == answer["success_rate"] == 0.6
    assert numbers.failures[0][:2] == ("1032", 2)
    assert numbers.pending == 1 and numbers.tiles()["success"] == "60.0 %"
    assert numbers.tiles()["amount"] == "KES 3,000"  # the money tile is collected money, not attempts (3,170)
    assert numbers.by_status[0].status == "COMPLETED"


def test_status_table_leaves_out_empty_statuses(conn):
    seed(2, start=utcnow() - timedelta(seconds=30), status="COMPLETED", amount=500)
    answer = summary_now()
    data = DashboardData.from_api(answer, answer, [{"id": 1, "acknowledged": False}, {"id": 2, "acknowledged": True}])
    assert data.status_table() == [("Completed", "2", "KES 1,000", "2", "KES 1,000")]
    assert data.unread_alerts == 1 and [a["id"] for a in data.alerts] == [1]


def test_hourly_rows_fold_into_nairobi_hours():
    hourly = [{"hour": "2026-11-22T06:00:00Z", "count": 4, "completed": 3},
              {"hour": "2026-11-23T06:00:00Z", "count": 2, "completed": 1},
              {"hour": "2026-11-22T21:00:00Z", "count": 0, "completed": 0}]
    hours = by_hour_of_day(hourly)
    assert len(hours) == 24 and hours[9] == (9, 6, 4) and hours[0] == (0, 0, 0)
    rates = dict(success_by_hour(hourly))
    assert rates[9] == 4 / 6 and rates[0] is None


def test_formats():
    assert (kes(1234567), kes(None), percent(0.98765), percent(None), seconds(1.234)) == (
        "KES 1,234,567", "—", "98.8 %", "—", "1.2 s")
    assert today_nairobi(datetime(2026, 11, 22, 21, 30, tzinfo=timezone.utc)).isoformat() == "2026-11-23"
