"""The merchants' daily settlement summary e-mail (issue 16): collected, refunds and net of one Nairobi day.

Sent from LIPA_SETTLEMENT_HOUR (Nairobi time) on, for the day that ended at the last midnight in Nairobi:
a whole day, so nothing paid later that evening is left out. The job runs every few minutes under its
database lease (one process at a time); each summary is queued under the key
``email:settlement:<merchant id>:<day>``, so however many processes run it, however often, and across
restarts, a merchant gets one summary a day. A gateway that was down at the hour sends it when it is back
(that same day; an older day is not caught up: its figures are in the dashboard).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from shared.db import write_tx
from shared.models import Merchant, Notification
from shared.timeutil import NAIROBI, utcnow

from ..backoffice.payments_query import of_merchant
from ..backoffice.stats import collected, refunded
from ..notify import mail
from ..texts.mail import settlement_text


def settlement_key(merchant_id: int, day: date) -> str:
    return f"email:settlement:{merchant_id}:{day.isoformat()}"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[since, until) of a Nairobi day, as the naive UTC the database stores."""
    since = datetime.combine(day, time(), NAIROBI).astimezone(timezone.utc).replace(tzinfo=None)
    return since, since + timedelta(days=1)


def figures(merchant_id: int, day: date) -> dict:
    """A merchant's day: payments M-Pesa confirmed (as paid), refunds M-Pesa completed, and the difference."""
    since, until = day_bounds(day)
    scope = of_merchant(merchant_id)
    paid = collected(since, until, of=scope, gross=True)
    refunds = refunded(since, until, of=scope)
    return {"collected": paid, "refunds": refunds, "net": paid["amount"] - refunds["amount"]}


def due_day(now: datetime, hour: int) -> date | None:
    """The Nairobi day whose summary is due at ``now`` (naive UTC): yesterday, once today's hour has come."""
    local = now.replace(tzinfo=timezone.utc).astimezone(NAIROBI)
    return local.date() - timedelta(days=1) if local.hour >= hour else None


def send_summaries(*, config, now: datetime | None = None) -> dict:
    """Queue the due day's summary for every merchant with a settlement e-mail (once each: dedupe keys)."""
    if not config.smtp_url:
        return {"skipped": "no LIPA_SMTP_URL"}
    day = due_day(now or utcnow(), config.settlement_hour)
    if day is None:
        return {"queued": 0}
    queued = 0
    for merchant in Merchant.select().where(Merchant.email.is_null(False)).order_by(Merchant.id):
        key = settlement_key(merchant.id, day)
        if not merchant.email or Notification.select().where(Notification.dedupe_key == key).exists():
            continue  # sent (or queued) already today: by this process or another
        subject, text = settlement_text(merchant=merchant.name, day=day.isoformat(),
                                        figures=figures(merchant.id, day))
        with write_tx():
            mail.queue(kind=mail.SETTLEMENT_KIND, recipient=merchant.email, subject=subject, text=text,
                       dedupe_key=key)
        queued += 1
    return {"day": day.isoformat(), "queued": queued}
