"""A small, realistic demo data set for the admin app, and the README screenshots taken over it.

    python tests/seed_demo.py --screenshots docs/screenshots   # throwaway SQLite, live gateway, 1366x768 PNGs
    python tests/seed_demo.py --database-url sqlite:///demo.db  # only seed (staff: admin/operator/viewer)

Payments of today in several statuses with their events, a few notifications, alerts, one job run and one
reconciliation run of tests/fixtures/mpesa_statement.csv.
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.backoffice import auth  # noqa: E402
from shared.db import db  # noqa: E402
from shared.models import Alert, Notification, Payment, PaymentEvent, Refund  # noqa: E402
from shared.timeutil import utcnow  # noqa: E402

PASSWORD = "demo-password-1"
NAIROBI = timezone(timedelta(hours=3))
OUTCOMES = ["COMPLETED"] * 22 + ["FAILED"] * 4 + ["CANCELLED"] * 3 + ["PROCESSING"] * 2 + ["EXPIRED", "REFUNDED"]
FAILURE_CODES = {"FAILED": ("1", "The balance is insufficient for the transaction."),
                 "CANCELLED": ("1032", "Request cancelled by user."), "EXPIRED": ("1037", "DS timeout user cannot be "
                                                                                   "reached.")}
ACCOUNTS = ("482913", "12345", "SCHOOL-FEES", "RENT-4B", "WATER-77")


def _times(count: int, rng: random.Random) -> list[datetime]:
    """Naive-UTC times spread over today (Nairobi) up to now, oldest first."""
    now = utcnow()
    start = datetime.now(NAIROBI).replace(hour=0, minute=0, second=0, microsecond=0)
    start = start.astimezone(timezone.utc).replace(tzinfo=None) + timedelta(hours=6)
    start = min(start, now - timedelta(hours=2))
    span = (now - start).total_seconds() - 120
    return sorted(start + timedelta(seconds=rng.uniform(0, span)) for _ in range(count))


def seed_payments(rng: random.Random) -> list[Payment]:
    """A few dozen payments with their transition events (callback lag included)."""
    made = []
    for n, (status, at) in enumerate(zip(OUTCOMES, _times(len(OUTCOMES), rng), strict=True), start=1):
        phone = f"2547{rng.randint(10, 29)}{rng.randint(100000, 999999)}"
        paid = status in ("COMPLETED", "REFUNDED")
        code = FAILURE_CODES.get(status, ("0", "The service request is processed successfully.") if paid else None)
        payment = Payment.create(
            reference=f"LPD{n:06d}", phone=phone, amount=rng.choice((50, 120, 300, 500, 1200, 2500, 4800)),
            account=rng.choice(ACCOUNTS), channel=rng.choice(("ussd", "ussd", "sms", "api")), status=status,
            checkout_request_id=f"ws_CO_demo_{n:04d}", mpesa_receipt=f"SKD{n:03d}DEMO" if paid else None,
            result_code=code and code[0], result_desc=code and code[1], created_at=at, updated_at=at,
            completed_at=at + timedelta(seconds=9) if paid else None,
            active_phone=phone if status == "PROCESSING" else None,
            refunded_amount=0)
        _events(payment, status, at, rng)
        made.append(payment)
    return made


def _events(payment: Payment, status: str, at: datetime, rng: random.Random) -> None:
    steps = [("PENDING", "PROCESSING", "ussd", 1.0)]
    if status != "PROCESSING":
        first = "COMPLETED" if status == "REFUNDED" else status
        steps.append(("PROCESSING", first, "daraja-callback", rng.uniform(4, 25)))
    refund = None
    if status == "REFUNDED":  # a refund as the gateway records one: requested by staff, completed by M-Pesa
        refund = Refund.create(payment=payment, amount=payment.amount, reason="Requested by the customer: goods "
                               "returned", requested_by="staff:admin", status="COMPLETED",
                               originator_conversation_id=f"demo-refund-{payment.id}", transaction_id="SKR001DEMO",
                               created_at=at + timedelta(seconds=900), updated_at=at + timedelta(seconds=960))
        Payment.update(refunded_amount=payment.amount).where(Payment.id == payment.id).execute()
        steps += [("COMPLETED", "REFUND_PENDING", "staff:admin", 900.0, f"refund {refund.id}: {refund.reason}"),
                  ("REFUND_PENDING", "REFUNDED", "daraja-result", 60.0, f"refund {refund.id}: completed")]
    when = at
    for before, after, actor, delay, *reason in steps:
        when += timedelta(seconds=delay)
        PaymentEvent.create(payment=payment, from_status=before, to_status=after, actor=actor, created_at=when,
                            reason=reason[0] if reason else "")


def seed_notes_and_alerts(payments: list[Payment]) -> None:
    """Receipt SMS for the paid ones (one failed), and three alerts (one acknowledged)."""
    paid = [p for p in payments if p.status == "COMPLETED"]
    for n, p in enumerate(paid[:8]):
        status = "FAILED" if n == 2 else ("SENT" if n == 5 else "DELIVERED")
        Notification.create(channel="sms", kind="payment_completed", payment=p, recipient=p.phone,
                            body=f"Paid KES {p.amount} to {p.account}. Ref {p.reference}.", status=status, attempts=1,
                            failure_reason="AbsentSubscriber" if status == "FAILED" else "",
                            sent_at=p.completed_at, delivered_at=p.completed_at if status == "DELIVERED" else None,
                            created_at=p.completed_at, updated_at=p.completed_at)  # queued when it was paid
    late = next(p for p in payments if p.status == "EXPIRED")
    Alert.create(kind="late_money", message=f"Money arrived after {late.reference} expired", payment=late)
    Alert.create(kind="unknown_callback", message="STK callback for an unknown CheckoutRequestID")
    Alert.create(kind="stuck_payments", message="2 payments processing for over 15 minutes", acknowledged=True)


def seed(database_url: str) -> None:
    """Create the schema, the staff and the data set, then a job run and a reconciliation run."""
    from gateway import create_app
    from gateway.jobs.runner import run_job
    from gateway.reconciliation.service import import_statement
    from shared.config import load_config

    config = load_config({"LIPA_PROFILE": "local", "DATABASE_URL": database_url,
                          "MPESA_CALLBACK_TOKEN": "demo-callback-token-0123456789"}, read_dotenv=False)
    app = create_app(config)
    rng = random.Random(7)
    with db.connection_context(), db.atomic():
        for role in auth.ROLES:
            auth.create_staff(role, PASSWORD, role)
        payments = seed_payments(rng)
        seed_notes_and_alerts(payments)
    run_job("expire-pending", app.extensions["lipa"], trigger="demo")
    with db.connection_context():
        import_statement((ROOT / "tests/fixtures/mpesa_statement.csv").read_bytes(), filename="nov-22.csv",
                         uploaded_by="staff:operator", config=config)
    return app


def screenshots(out_dir: Path) -> int:
    """Seed a throwaway database, serve it on a free port, and run the app's --screenshot."""
    from tests.conftest import LiveServer

    with tempfile.TemporaryDirectory() as tmp:
        app = seed(f"sqlite:///{tmp}/demo.db")
        server = LiveServer(app)
        try:
            return subprocess.call([sys.executable, str(ROOT / "run_admin.py"), "--gateway-url", server.url,
                                    "--username", "admin", "--password", PASSWORD, "--screenshot", str(out_dir)],
                                   cwd=ROOT, env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
        finally:
            server.stop()
            app.extensions["lipa"].tasks.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="seed this database and stop")
    parser.add_argument("--screenshots", metavar="DIR", help="seed a throwaway database and save the PNGs into DIR")
    args = parser.parse_args()
    if args.screenshots:
        return screenshots(Path(args.screenshots))
    seed(args.database_url or "sqlite:///demo.db")
    print(f"Seeded; staff admin/operator/viewer with password {PASSWORD!r}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
