"""Qt-free shaping of ``/stats`` answers into what the dashboard shows: tiles, tables and chart series."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

NAIROBI = timezone(timedelta(hours=3))
STATUS_ORDER = ("COMPLETED", "SETTLED", "PENDING", "PROCESSING", "FAILED", "CANCELLED", "EXPIRED",
                "REFUND_PENDING", "REFUNDED")


def kes(amount: int | float | None) -> str:
    """Whole shillings with thousands separators."""
    return "—" if amount is None else f"KES {amount:,.0f}"


def percent(rate: float | None) -> str:
    """A 0..1 rate as a percentage; a dash when nothing was decided."""
    return "—" if rate is None else f"{rate * 100:.1f} %"


def seconds(value: float | None) -> str:
    """A lag in seconds, short."""
    return "—" if value is None else f"{value:.1f} s"


def today_nairobi(now: datetime | None = None) -> date:
    """The date in Nairobi now (the API's default period)."""
    return (now or datetime.now(timezone.utc)).astimezone(NAIROBI).date()


@dataclass
class StatusRow:
    """One status with its count and amount."""

    status: str
    count: int
    amount: int


@dataclass
class PeriodNumbers:
    """Every number of one ``/stats`` answer, ready to show."""

    date_from: str
    date_to: str
    count: int
    amount: int
    success_rate: float | None
    failure_rate: float | None
    by_status: list[StatusRow]
    failures: list[tuple[str, int, str]]
    lag_p50: float | None
    lag_p95: float | None
    delivery_rate: float | None
    sms_by_status: dict[str, int]
    pending: int
    stuck: int
    hourly: list[dict] = field(default_factory=list)
    collected: int = 0  # money M-Pesa said was paid in the period, net of refunds (the money tiles)
    collected_count: int = 0
    refunded: int = 0

    @classmethod
    def from_stats(cls, stats: dict) -> PeriodNumbers:
        """Read the API's JSON; statuses in a fixed order, unknown ones last."""
        payments, lag, notes = stats["payments"], stats.get("callback_lag_s") or {}, stats.get("notifications") or {}
        statuses, collected = payments["by_status"], stats.get("collected") or {}
        order = [s for s in STATUS_ORDER if s in statuses] + sorted(set(statuses) - set(STATUS_ORDER))
        return cls(
            stats["from"], stats["to"], int(payments["count"]), int(payments["amount"]),
            stats.get("success_rate"), stats.get("failure_rate"),
            [StatusRow(s, int(statuses[s]["count"]), int(statuses[s]["amount"])) for s in order],
            [(f["result_code"], int(f["count"]), f.get("description") or "")
             for f in stats.get("failures_by_result_code") or []],
            lag.get("p50"), lag.get("p95"), notes.get("delivery_rate"), dict(notes.get("by_status") or {}),
            int(stats.get("pending") or 0), int(stats.get("stuck") or 0), list(stats.get("hourly") or []),
            int(collected.get("amount") or 0), int(collected.get("count") or 0),
            int((stats.get("refunded") or {}).get("amount") or 0))

    def status(self, name: str) -> StatusRow:
        """The row of one status (zeros when absent)."""
        return next((row for row in self.by_status if row.status == name), StatusRow(name, 0, 0))

    def tiles(self) -> dict[str, str]:
        """The headline numbers as text, by tile key."""
        return {"payments": f"{self.count:,}", "amount": kes(self.collected), "refunded": kes(self.refunded),
                "success": percent(self.success_rate),
                "lag": f"{seconds(self.lag_p50)} / {seconds(self.lag_p95)}", "sms": percent(self.delivery_rate),
                "pending": f"{self.pending:,}", "stuck": f"{self.stuck:,}"}


def by_hour_of_day(hourly: list[dict]) -> list[tuple[int, int, int]]:
    """The API's hourly rows (UTC) folded into 24 Nairobi hours: (hour, payments, completed)."""
    hours = {h: [0, 0] for h in range(24)}
    for row in hourly:
        at = datetime.fromisoformat(row["hour"].replace("Z", "+00:00"))
        at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
        bucket = hours[at.astimezone(NAIROBI).hour]
        bucket[0] += int(row.get("count") or 0)
        bucket[1] += int(row.get("completed") or 0)
    return [(h, count, completed) for h, (count, completed) in hours.items()]


def success_by_hour(hourly: list[dict]) -> list[tuple[int, float | None]]:
    """The share of each hour's payments that completed (None for an hour without payments)."""
    return [(h, completed / count if count else None) for h, count, completed in by_hour_of_day(hourly)]


@dataclass
class DashboardData:
    """Today, the chosen period and the open alerts, as the dashboard shows them."""

    today: PeriodNumbers
    period: PeriodNumbers
    alerts: list[dict] = field(default_factory=list)
    unread_alerts: int = 0

    @classmethod
    def from_api(cls, today: dict, period: dict, alerts: list[dict] | None = None, *,
                 unread: int | None = None) -> DashboardData:
        """From two ``/stats`` answers and a page of alerts; ``unread`` is the gateway's own count of open
        alerts (the page holds at most 100 of them)."""
        open_alerts = [a for a in alerts or [] if not a.get("acknowledged")]
        return cls(PeriodNumbers.from_stats(today), PeriodNumbers.from_stats(period), open_alerts,
                   len(open_alerts) if unread is None else int(unread))

    def status_table(self) -> list[tuple[str, str, str, str, str]]:
        """Rows of (status, today count, today amount, period count, period amount); all-zero rows left out."""
        rows = []
        for row in self.period.by_status:
            now = self.today.status(row.status)
            if row.count or now.count:
                rows.append((row.status.replace("_", " ").title(), f"{now.count:,}", kes(now.amount),
                             f"{row.count:,}", kes(row.amount)))
        return rows


def load_dashboard(client, date_from: date | None, date_to: date | None) -> DashboardData:
    """The blocking calls behind one dashboard refresh (run in a worker)."""
    today = client.stats()
    period = client.stats(date_from.isoformat(), date_to.isoformat()) if date_from and date_to else today
    alerts = client.alerts(acknowledged=False, limit=100)
    return DashboardData.from_api(today, period, alerts.items, unread=alerts.counts.get("unacknowledged"))
