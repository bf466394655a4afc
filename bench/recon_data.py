"""A realistic M-Pesa statement of N money-in lines and the Lipa payments that match it, for benchmarks and tests.

One day of a paybill: metadata rows, the portal's header, money-in rows (mostly "Pay Bill Online" from STK
pushes, some "Pay Bill from" the M-Pesa menu) in time order, with a charge row after about a third of them.
Shares of the lines can be made to need the guess (payment completed without a receipt), to be a missed
callback (payment still PROCESSING), or to be unknown to Lipa; ``extra`` payments are in Lipa only.
"""
from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.db import db
from shared.models import Payment

HEADER = ["Receipt No.", "Completion Time", "Initiation Time", "Details", "Transaction Status", "Paid In",
          "Withdrawn", "Balance", "Balance Confirmed", "Reason Type", "Other Party Info", "Linked Transaction ID",
          "A/C No."]
AMOUNTS = [10, 20, 50, 100, 100, 150, 200, 200, 250, 300, 500, 500, 700, 1000, 1000, 1200, 1500, 2000, 2500,
           3000, 5000, 7500, 10000, 20000]
PREFIXES = ["25470", "25471", "25472", "25474", "25479", "25411", "25475"]
NAMES = ["MARY W", "JOHN K", "AMINA H", "PETER O", "GRACE N", "BRIAN M", "FAITH A", "KEVIN T", "LUCY J"]
RECEIPT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
EAT = timedelta(hours=3)
PAYMENT_FIELDS = ("reference", "phone", "amount", "account", "channel", "status", "mpesa_receipt", "created_at",
                  "completed_at", "updated_at", "description", "status_message")


@dataclass
class Dataset:
    csv_bytes: bytes
    payments: list[tuple] = field(default_factory=list)  # rows in PAYMENT_FIELDS order
    lines: int = 0
    expected: dict = field(default_factory=dict)  # what a reconciliation should find


def make_dataset(n: int, *, seed: int = 7, day: datetime = datetime(2026, 11, 22), fuzzy_share: float = 0.0,
                 missed_share: float = 0.0, unknown_share: float = 0.0, extra: int = 0) -> Dataset:
    """N money-in lines of one Nairobi day and the payments behind them (see the module docstring)."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    _metadata(writer, day)
    writer.writerow(HEADER)
    data = Dataset(csv_bytes=b"", lines=n)
    kinds = {"receipt": 0, "fuzzy": 0, "missed": 0, "unknown": 0}
    balance = 48_000
    receipts = _receipts(rng, n + extra)
    for i, moment in enumerate(_times(rng, n, day)):
        kind = _kind(rng, fuzzy_share, missed_share, unknown_share)
        kinds[kind] += 1
        amount, phone, account = rng.choice(AMOUNTS), _phone(rng), _account(rng)
        online = rng.random() < 0.85
        balance += amount
        writer.writerow(_money_row(receipts[i], moment, amount, phone, account, online, balance, rng))
        if rng.random() < 0.33:
            balance -= 3
            writer.writerow(_charge_row(receipts[i], moment, balance))
        if kind != "unknown":
            data.payments.append(_payment(i, kind, moment, amount, phone, account, online, receipts[i]))
    for j in range(extra):
        moment = day + timedelta(seconds=rng.randrange(86_000)) - EAT
        data.payments.append(_payment(n + j, "receipt", moment, rng.choice(AMOUNTS), _phone(rng), _account(rng),
                                      True, receipts[n + j]))
    data.csv_bytes = out.getvalue().encode("utf-8-sig")
    data.expected = {**kinds, "matched": kinds["receipt"] + kinds["fuzzy"] + kinds["missed"], "extra": extra}
    return data


def insert_payments(rows: list[tuple], batch: int = 2000) -> None:
    """Bulk-insert the payments (one transaction)."""
    fields = [getattr(Payment, name) for name in PAYMENT_FIELDS]
    with db.atomic():
        for start in range(0, len(rows), batch):
            Payment.insert_many(rows[start:start + batch], fields=fields).as_rowcount().execute()


def _metadata(writer, day: datetime) -> None:
    writer.writerow(["Organization Name:", "Example Traders Ltd"])
    writer.writerow(["Organization Short Code:", "600638"])
    writer.writerow(["Time Period:", "From", f"{day:%d-%m-%Y} 00:00:00", "To", f"{day:%d-%m-%Y} 23:59:59"])
    writer.writerow(["Operator:", "reports"])
    writer.writerow(["Opening Balance:", "48,000.00"])
    writer.writerow(["Closing Balance:", ""])


def _receipts(rng: random.Random, count: int) -> list[str]:
    seen: set[str] = set()
    while len(seen) < count:
        seen.add("RK" + "".join(rng.choice(RECEIPT_CHARS) for _ in range(8)))
    return sorted(seen)


def _times(rng: random.Random, n: int, day: datetime) -> list[datetime]:
    """N Nairobi times in order, busier in the day than at night."""
    seconds = sorted(int(rng.triangular(0, 86_399, 46_800)) for _ in range(n))
    return [day + timedelta(seconds=s) for s in seconds]


def _kind(rng: random.Random, fuzzy: float, missed: float, unknown: float) -> str:
    roll = rng.random()
    for name, share in (("fuzzy", fuzzy), ("missed", missed), ("unknown", unknown)):
        if roll < share:
            return name
        roll -= share
    return "receipt"


def _phone(rng: random.Random) -> str:
    return rng.choice(PREFIXES) + f"{rng.randrange(10_000_000):07d}"


def _account(rng: random.Random) -> str:
    return f"INV-{rng.randrange(1, 99_999)}" if rng.random() < 0.5 else str(rng.randrange(10_000, 999_999))


def _money(amount: int) -> str:
    return f"{amount:,}.00"


def _money_row(receipt, moment, amount, phone, account, online, balance, rng) -> list[str]:
    name = rng.choice(NAMES)
    masked = f"{phone[:5]}****{phone[-3:]}"
    kind = "Pay Bill Online" if online else "Pay Bill"
    started = moment - timedelta(seconds=rng.randrange(0, 8))
    return [receipt, f"{moment:%d-%m-%Y %H:%M:%S}", f"{started:%d-%m-%Y %H:%M:%S}",
            f"{kind} from {masked} - {name} Acc. {account}", "Completed", _money(amount), "", _money(balance),
            "true", kind, f"{phone[:6]}****{phone[-2:]} - {name}", "", account]


def _charge_row(receipt, moment, balance) -> list[str]:
    stamp = f"{moment:%d-%m-%Y %H:%M:%S}"
    return [receipt[:-1] + "Z", stamp, stamp, "Business Pay Bill Charge", "Completed", "", "3.00",
            _money(balance), "true", "Pay Bill Charge", "", receipt, ""]


def _payment(i: int, kind: str, moment: datetime, amount: int, phone: str, account: str, online: bool,
             receipt: str) -> tuple:
    """The payment Lipa holds for a line: (PAYMENT_FIELDS order)."""
    utc = moment - EAT
    created = utc - timedelta(seconds=20)
    status = "PROCESSING" if kind == "missed" else "COMPLETED"
    has_receipt = kind == "receipt"
    completed = utc + timedelta(seconds=2) if status == "COMPLETED" else None
    return (f"LB{i:08d}", phone, amount, account.upper(), "api" if online else "c2b", status,
            receipt if has_receipt else None, created, completed, completed or created, "Payment", "")
