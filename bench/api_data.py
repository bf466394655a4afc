"""A realistic Lipa database of N payments (default 1,000,000) for the API speed bench, cached under /tmp.

Run: python bench/api_data.py [--n 1000000] [--seed 11] [--rebuild]   (prints the path and its facts)

What it holds (all deterministic for a given N and seed):
  * payments over the 90 days before generation, ids in time order, busier by day (Nairobi) than at night;
    statuses ~79% COMPLETED, ~4% SETTLED, ~6% FAILED, ~7% CANCELLED, ~4% EXPIRED, ~0.3% REFUNDED,
    a few REFUND_PENDING, and a handful of PENDING/PROCESSING in the last minutes (with active_phone);
  * ~200k distinct phones: 5% of payments from 500 regulars (~100 payments each), the rest spread evenly;
    C2B payments (15%) have phone "" and a payer hash, as production Daraja sends them;
  * ~5k accounts: 20% of payments go to 50 big accounts, the rest evenly over the others;
  * channels ussd/api/sms/c2b/staff; M-Pesa receipts on every paid payment; result codes on refusals;
  * PaymentEvents: created, PENDING->PROCESSING (STK), PROCESSING->final (2 for C2B, more for settled or
    refunded payments);
  * for every 4th payment (the "rich" subset, id % 4 == 0): its raw provider callback (InboxMessage), its
    receipt or failure SMS (Notification, plus a webhook for API payments) and, for USSD, its session;
  * refunds (with their staff audit rows) for the refunded payments.

Personal data is stored as the gateway stores it: the models' own fields (shared/privacy/sealed.py) seal
phones, payer names, raw callbacks, message bodies and event payloads with the database's own local-profile
keys (kept in its Setting table, so a local-profile gateway started on the file reads them) and hash the
look-ups. A phone's ciphertext and hash are computed once and reused (200k distinct phones over 1M payments),
handed to its field as already stored; every body and payload is sealed by its field on its own.

Rows go in through the peewee models (shared/models), so the schema has one home, the migrations: the
schema comes from shared.models.migrations, and each table's columns, names and conversions from its model
(``Model.insert_many`` in batches, one big transaction). ``synchronous=OFF`` and the rollback journal are off
during generation only, and secondary indexes are dropped and rebuilt after the load. The finished file is
renamed into place and described by a JSON sidecar written last (its presence marks a complete cache entry).
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import peewee as pw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.db import db, init_db  # noqa: E402 - after the path is set
from shared.models import AuditLog, InboxMessage, Notification, Payment, PaymentEvent, Refund, UssdSession  # noqa: E402
from shared.models.keystore import install_keys  # noqa: E402
from shared.privacy import crypto  # noqa: E402
from shared.privacy.sealed import digest_of  # noqa: E402

CACHE_DIR = Path(os.environ.get("LIPA_BENCH_CACHE", "/tmp/lipa-api-bench"))
FORMAT = 2  # bump when the generated data changes shape, so an old cache entry is not reused
DAYS = 90
RICH_EVERY = 4
CHUNK = 20_000

PHONES = 200_000
REGULARS = 500
ACCOUNTS = 5_000
BIG_ACCOUNTS = 50
AMOUNTS = [10, 20, 50, 100, 100, 150, 200, 200, 250, 300, 500, 500, 700, 1000, 1000, 1200, 1500, 2000, 2500,
           3000, 5000, 7500, 10000, 20000]
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
EAT = timedelta(hours=3)
FAILED_CODES = [("1", "The balance is insufficient for the transaction."),
                ("2001", "The initiator information is invalid."),
                ("1037", "DS timeout user cannot be reached"),
                ("1019", "Transaction has expired")]
# (status, cumulative share) for payments older than the last few minutes
STATUS_SHARES = [("COMPLETED", 0.760), ("SETTLED", 0.800), ("FAILED", 0.870), ("CANCELLED", 0.950),
                 ("EXPIRED", 0.9965), ("REFUNDED", 0.9995), ("REFUND_PENDING", 1.0)]
CHANNEL_SHARES = [("ussd", 0.40), ("api", 0.70), ("sms", 0.80), ("c2b", 0.95), ("staff", 1.0)]
PAID = {"COMPLETED", "SETTLED", "REFUNDED", "REFUND_PENDING"}
WEBHOOK_URL = "https://shop.example.com/lipa/webhook"

# Each table's fields in the order the generator builds its rows (the models name the columns).
P, E, M, N, U, R, A = Payment, PaymentEvent, InboxMessage, Notification, UssdSession, Refund, AuditLog
TABLES = {
    Payment: (P.id, P.created_at, P.updated_at, P.reference, P.phone, P.phone_hash, P.amount, P.account,
              P.description, P.status, P.status_message, P.channel, P.request, P.retry_of, P.active_phone,
              P.idempotency_key, P.merchant_request_id, P.checkout_request_id, P.mpesa_receipt, P.result_code,
              P.result_desc, P.language, P.flagged, P.flag_reason, P.push_attempts, P.completed_at, P.payer_hash,
              P.payer_lookup, P.payer_name, P.refunded_amount),
    PaymentEvent: (E.payment, E.kind, E.from_status, E.to_status, E.actor, E.reason, E.payload, E.created_at),
    InboxMessage: (M.source, M.body, M.dedupe_key, M.remote_addr, M.status, M.note, M.payment, M.received_at,
                   M.processed_at),
    Notification: (N.created_at, N.updated_at, N.channel, N.kind, N.payment, N.request, N.recipient,
                   N.recipient_hash, N.language, N.body, N.status, N.attempts, N.next_attempt_at, N.claimed_by,
                   N.claim_expires_at, N.dedupe_key, N.provider_message_id, N.provider_status, N.cost,
                   N.failure_reason, N.sent_at, N.delivered_at),
    UssdSession: (U.created_at, U.updated_at, U.session_id, U.phone, U.service_code, U.inputs, U.last_text,
                  U.last_response, U.payment),
    Refund: (R.created_at, R.updated_at, R.payment, R.amount, R.reason, R.requested_by, R.method, R.status,
             R.originator_conversation_id, R.conversation_id, R.transaction_id, R.result_code, R.result_desc),
    AuditLog: (A.actor, A.action, A.target_type, A.target_id, A.reason, A.details, A.created_at),
}
FILLED = tuple(model._meta.table_name for model in TABLES)
MAX_PARAMS = 30_000  # per INSERT: under SQLite's 32,766 bound variables


def cache_paths(n: int, seed: int) -> tuple[Path, Path]:
    stem = CACHE_DIR / f"api-n{n}-s{seed}-f{FORMAT}"
    return stem.with_suffix(".db"), stem.with_suffix(".json")


def ensure(n: int = 1_000_000, *, seed: int = 11, rebuild: bool = False, log=print) -> tuple[Path, dict]:
    """(database file, facts) for N payments: the cached file when complete, else a freshly built one."""
    path, meta_path = cache_paths(n, seed)
    if not rebuild and path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text())
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)
    tmp = path.with_suffix(f".building-{os.getpid()}")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    _schema(tmp)
    meta = _fill(tmp, n, seed, log)
    meta["generation_s"] = round(time.perf_counter() - started, 1)
    meta["bytes"] = tmp.stat().st_size
    os.replace(tmp, path)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    meta_path.write_text(json.dumps(meta, indent=1))
    log(f"generated {n} payments in {meta['generation_s']} s -> {path} ({meta['bytes'] / 1e6:.0f} MB)")
    return path, meta


def _schema(path: Path) -> None:
    """The application's schema at its current version, through its own migrations; the file's own
    local-profile personal-data keys, generated into its Setting table and loaded for the generator."""
    from shared.config import Config
    from shared.models.migrations import migrate

    previous = db.obj
    init_db(f"sqlite:///{path}")
    install_keys(Config(profile="local", database_url=f"sqlite:///{path}"))
    migrate()
    db.close()
    if previous is not None:
        db.initialize(previous)


def _fill(path: Path, n: int, seed: int, log) -> dict:
    previous = db.obj
    init_db(f"sqlite:///{path}")
    try:
        with db.connection_context():
            return _load(n, seed, log)
    finally:
        db.close()
        if previous is not None:
            db.initialize(previous)


def _load(n: int, seed: int, log) -> dict:
    """Every row through its model, the indexes dropped meanwhile and rebuilt from the schema's own SQL."""
    for pragma in ("journal_mode=DELETE", "journal_mode=OFF", "synchronous=OFF", "cache_size=-400000",
                   "temp_store=MEMORY"):
        db.execute_sql(f"PRAGMA {pragma}")
    in_tables = f"tbl_name IN ({','.join('?' * len(FILLED))})"
    indexes = db.execute_sql(f"SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
                             f"AND {in_tables}", FILLED).fetchall()
    for name, _sql in indexes:
        db.execute_sql(f'DROP INDEX "{name}"')
    gen = Generator(n, seed)
    t0 = time.perf_counter()
    counts = dict.fromkeys(FILLED, 0)
    with db.atomic():
        for start in range(1, n + 1, CHUNK):
            batch = gen.chunk(start, min(n + 1, start + CHUNK))
            for model, fields in TABLES.items():
                rows = batch[model._meta.table_name]
                step = MAX_PARAMS // len(fields)
                for at in range(0, len(rows), step):
                    model.insert_many(rows[at:at + step], fields=fields).execute()
                counts[model._meta.table_name] += len(rows)
            if (start // CHUNK) % 10 == 0:
                log(f"  {start + CHUNK - 1:>9} payments written ({time.perf_counter() - t0:.0f} s)")
    log(f"  rows written in {time.perf_counter() - t0:.0f} s; rebuilding {len(indexes)} indexes")
    t1 = time.perf_counter()
    with db.atomic():
        for _name, sql in indexes:
            db.execute_sql(sql)
    log(f"  indexes rebuilt in {time.perf_counter() - t1:.0f} s")
    db.execute_sql("PRAGMA journal_mode=WAL")
    return {"n": n, "seed": seed, "format": FORMAT, "counts": counts, **gen.facts()}


def _as_stored(token: str) -> pw.Value:
    """A value already as its column stores it (a phone sealed once, reused): its field does not seal it again."""
    return pw.Value(token, unpack=False)


class Generator:
    """Payments and the rows around them, in id (= time) order, a chunk at a time."""

    def __init__(self, n: int, seed: int):
        self.n = n
        self.rng = random.Random(seed)
        self.end = datetime.now(timezone.utc).replace(tzinfo=None, second=0, microsecond=0)
        self.start = self.end - timedelta(days=DAYS)
        self.times = self._times()
        self.phones = [f"2547{(i * 7919 + 12_345_678) % 100_000_000:08d}" for i in range(PHONES)]
        self.accounts = [f"INV-{i:05d}" if i % 2 else f"{100_000 + i * 37}" for i in range(ACCOUNTS)]
        self.active_phones: set[str] = set()
        # phones, names: one ciphertext and one look-up hash each, which their fields store as they are
        self.seal_once = functools.lru_cache(maxsize=None)(lambda text: _as_stored(crypto.seal(text)))
        self.hash_once = functools.lru_cache(maxsize=None)(digest_of)
        self.receipt_samples: list[str] = []
        self.rich_ids: list[int] = []
        self.regular_counts: dict[str, int] = {}
        self.account_counts: dict[str, int] = {}

    def _times(self) -> list[datetime]:
        """N UTC times over DAYS days, sorted; within a day triangular around 13:00 Nairobi."""
        rng = self.rng
        day0 = datetime.combine((self.start + EAT).date(), datetime.min.time()) - EAT  # Nairobi midnight, in UTC
        span = (self.end - timedelta(minutes=5) - self.start).total_seconds()
        offsets = []
        lo = (self.start - day0).total_seconds()
        while len(offsets) < self.n:
            day = rng.randrange(DAYS + 1)
            secs = day * 86_400 + rng.triangular(0, 86_399.999, 46_800)
            if lo <= secs < lo + span:
                offsets.append(secs)
        offsets.sort()
        # the last few payments are still waiting: a few minutes old at generation time
        tail = min(20, self.n // 1000)
        for i in range(tail):
            offsets[self.n - tail + i] = lo + span + 15 * i
        return [day0 + timedelta(seconds=s) for s in offsets]

    def facts(self) -> dict:
        """What the bench needs to pick realistic filters."""
        top_phone = max(self.regular_counts.items(), key=lambda kv: kv[1])
        counts = sorted(self.account_counts.items(), key=lambda kv: kv[1])
        big = counts[-1]
        median = counts[len(counts) // 2]
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "phone_many": {"phone": top_phone[0], "payments": top_phone[1]},
            "account_big": {"account": big[0], "payments": big[1]},
            "account_typical": {"account": median[0], "payments": median[1]},
            "receipts": self.receipt_samples[:: max(1, len(self.receipt_samples) // 1000)][:1000],
            "rich_ids": self.rich_ids[:: max(1, len(self.rich_ids) // 1000)][:1000],
        }

    def chunk(self, lo: int, hi: int) -> dict[str, list[tuple]]:
        out = {table: [] for table in FILLED}
        for pid in range(lo, hi):
            self._payment(pid, out)
        return out

    def _payment(self, pid: int, out: dict) -> None:
        rng = self.rng
        created = self.times[pid - 1]
        waiting = pid > self.n - min(20, self.n // 1000)
        roll = rng.random()
        channel = next(name for name, share in CHANNEL_SHARES if roll < share)
        roll = rng.random()
        status = next(name for name, share in STATUS_SHARES if roll < share)
        if channel == "c2b":
            status = "COMPLETED" if status not in PAID else status  # C2B money has already arrived
        if rng.random() < 0.05:
            phone = self.phones[rng.randrange(REGULARS)]
            self.regular_counts[phone] = self.regular_counts.get(phone, 0) + 1
        else:
            phone = self.phones[rng.randrange(REGULARS, PHONES)]
        if rng.random() < 0.2:
            account = self.accounts[rng.randrange(BIG_ACCOUNTS)]
        else:
            account = self.accounts[rng.randrange(BIG_ACCOUNTS, ACCOUNTS)]
        self.account_counts[account] = self.account_counts.get(account, 0) + 1
        amount = rng.choice(AMOUNTS)
        active_phone = None
        if waiting and channel != "c2b" and phone not in self.active_phones:
            status = rng.choice(("PENDING", "PROCESSING"))
            active_phone = phone
            self.active_phones.add(phone)
        elif waiting:
            status = "COMPLETED"
        payer_hash = payer_name = None
        if channel == "c2b":
            payer_hash = hashlib.sha256(phone.encode()).hexdigest()
            payer_name = rng.choice(("MARY W", "JOHN K", "AMINA H", "PETER O", "GRACE N"))
            phone = ""
        ref = "LP" + _digits((pid * 2_654_435_761) % 32**7, CROCKFORD, 7)
        checkout = merchant_req = None
        if channel != "c2b":
            checkout = f"ws_CO_{created:%d%m%Y%H%M%S}{pid:09d}"
            merchant_req = f"{10_000 + pid % 90_000}-{pid}-1"
        receipt = None
        if status in PAID:
            receipt = "S" + _digits((pid * 1_000_003) % 36**9, BASE36, 9)
            if len(self.receipt_samples) < 200_000 and rng.random() < 0.01:
                self.receipt_samples.append(receipt)
        code, desc, message = _outcome(status, rng)
        final = created + timedelta(seconds=rng.uniform(6, 45) if channel != "c2b" else 1)
        if status == "EXPIRED":
            final = created + timedelta(seconds=rng.uniform(150, 400))
        completed_at = final if status in PAID else None
        updated = created if status in ("PENDING", "PROCESSING") else final
        if status == "SETTLED":
            updated = final + timedelta(hours=rng.uniform(12, 30))
        refunded = amount if status == "REFUNDED" else 0
        flagged = 1 if rng.random() < 0.002 else 0
        seal, digest = self.seal_once, self.hash_once
        out["payment"].append((
            pid, created, updated, ref, seal(phone) if phone else "", digest(phone) if phone else None,
            amount, account, "Payment", status, message, channel,
            None, None, digest(active_phone) if active_phone else None, None, merchant_req, checkout, receipt, code,
            desc, "sw" if rng.random() < 0.2 else "en", flagged, "amount over the flag limit" if flagged else "",
            0 if channel == "c2b" else 1, completed_at,
            seal(payer_hash) if payer_hash else None, digest(payer_hash) if payer_hash else None,
            seal(payer_name) if payer_name else None, refunded))
        self._events(pid, channel, status, created, final, updated, code, receipt, amount, account, flagged, out)
        rich = pid % RICH_EVERY == 0 and status not in ("PENDING", "PROCESSING")
        if rich:
            self.rich_ids.append(pid)
            self._rich(pid, channel, status, phone or "254700000000", created, final, code, desc, receipt, amount,
                       account, ref, checkout, merchant_req, out)
        if status in ("REFUNDED", "REFUND_PENDING"):
            self._refund(pid, status, amount, final, out)

    def _events(self, pid, channel, status, created, final, updated, code, receipt, amount, account, flagged,
                out) -> None:
        ev = out["payment_event"]
        actor = channel if channel != "staff" else "staff:cashier"
        ev.append((pid, "created", "PENDING", "PENDING", actor,
                   f"{channel} payment of {amount} KES to {account}", None, created))
        if channel == "c2b":
            ev.append((pid, "transition", "PENDING", "COMPLETED", "daraja-c2b", "C2B confirmation",
                       {"receipt": receipt}, final))
            if status in ("SETTLED", "REFUNDED", "REFUND_PENDING"):
                self._after_paid(pid, status, final, updated, ev)
            return
        if status == "PENDING":
            return
        sent = created + timedelta(seconds=1.5)
        ev.append((pid, "transition", "PENDING", "PROCESSING", actor, "Daraja accepted the STK push", None,
                   sent))
        if status == "PROCESSING":
            return
        if status == "EXPIRED":
            ev.append((pid, "transition", "PROCESSING", "EXPIRED", "sweep", "no callback; STK query: timeout",
                       {"result_code": code}, final))
            return
        to = "COMPLETED" if status in PAID else status
        payload = {"result_code": code or "0", "receipt": receipt} if to == "COMPLETED" else {"result_code": code}
        ev.append((pid, "transition", "PROCESSING", to, "daraja-callback", "STK callback",
                   payload, final))
        if flagged:
            ev.append((pid, "flag", to, to, "rules", "amount over the flag limit", None, final))
        if status in ("SETTLED", "REFUNDED", "REFUND_PENDING"):
            self._after_paid(pid, status, final, updated, ev)

    @staticmethod
    def _after_paid(pid, status, final, updated, ev) -> None:
        if status == "SETTLED":
            ev.append((pid, "transition", "COMPLETED", "SETTLED", "reconciliation", "matched statement line", None,
                       updated))
            return
        asked = final + timedelta(hours=2)
        ev.append((pid, "transition", "COMPLETED", "REFUND_PENDING", "staff:admin", "customer paid twice", None,
                   asked))
        if status == "REFUNDED":
            ev.append((pid, "transition", "REFUND_PENDING", "REFUNDED", "daraja-result", "reversal completed", None,
                       asked + timedelta(seconds=30)))

    def _rich(self, pid, channel, status, phone, created, final, code, desc, receipt, amount, account, ref,
              checkout, merchant_req, out) -> None:
        rng = self.rng
        processed = final + timedelta(milliseconds=40)
        if channel == "c2b":
            body = {"TransactionType": "Pay Bill", "TransID": receipt, "TransTime": f"{final + EAT:%Y%m%d%H%M%S}",
                    "TransAmount": f"{amount}.00", "BusinessShortCode": "600638", "BillRefNumber": account,
                    "OrgAccountBalance": "", "MSISDN": hashlib.sha256(phone.encode()).hexdigest(),
                    "FirstName": "MARY"}
            out["inbox_message"].append(("daraja.c2b", json.dumps(body), f"c2b:{receipt}",
                                         "196.201.214.200", "APPLIED", "created payment", pid, final,
                                         processed))
        elif status != "EXPIRED":
            items = [{"Name": "Amount", "Value": amount}, {"Name": "MpesaReceiptNumber", "Value": receipt},
                     {"Name": "TransactionDate", "Value": int(f"{final + EAT:%Y%m%d%H%M%S}")},
                     {"Name": "PhoneNumber", "Value": int(phone)}] if receipt else None
            callback = {"MerchantRequestID": merchant_req, "CheckoutRequestID": checkout,
                        "ResultCode": int(code or 0), "ResultDesc": desc or "The service request is processed "
                        "successfully."}
            if items:
                callback["CallbackMetadata"] = {"Item": items}
            out["inbox_message"].append(("daraja.stk", json.dumps({"Body": {"stkCallback": callback}}),
                                         f"stk:{checkout}", "196.201.214.200", "APPLIED",
                                         "COMPLETED" if receipt else status, pid, final, processed))
        if channel == "ussd":
            inputs = ["1", str(amount), account, "1"]
            session = f"ATUid_{pid:010x}{rng.getrandbits(32):08x}"
            out["ussd_session"].append((created - timedelta(seconds=20), created, session,
                                        self.seal_once(phone),
                                        "*384*123#", inputs, "*".join(inputs),
                                        "END Enter your M-Pesa PIN on the prompt.", pid))
        if phone and phone != "254700000000" and status != "EXPIRED":
            paid = receipt is not None
            kind = "payment_completed" if paid else "payment_failed"
            body = (f"Confirmed. KES {amount} received for account {account}. Ref {ref}, M-Pesa {receipt}. "
                    "Thank you." if paid else f"Payment {ref} of KES {amount} to {account} was not completed: "
                    f"{desc}. Dial *384*123# to try again.")
            sent = processed + timedelta(milliseconds=rng.uniform(200, 2000))
            roll = rng.random()
            st, delivered = ("DELIVERED", sent + timedelta(seconds=4)) if roll < 0.9 else (
                ("SENT", None) if roll < 0.98 else ("FAILED", None))
            out["notification"].append((
                processed, sent, "sms", kind, pid, None, self.seal_once(phone), self.hash_once(phone), "en",
                body, st, 1, processed,
                None, None, f"{kind}:{pid}", f"ATXid_{pid:010d}", "Success" if st != "FAILED" else "Rejected",
                "KES 0.8000", "" if st != "FAILED" else "InvalidPhoneNumber", sent, delivered))
        if channel == "api" and status != "EXPIRED":
            kind = "webhook_payment_paid" if receipt else "webhook_payment_failed"
            sent = processed + timedelta(milliseconds=300)
            out["notification"].append((
                processed, sent, "webhook", kind, pid, None, self.seal_once(WEBHOOK_URL),
                self.hash_once(WEBHOOK_URL), "en",
                json.dumps({"event": kind, "payment": {"id": pid, "reference": ref, "amount": amount}}),
                "SENT", 1,
                processed, None, None, f"{kind}:{pid}", None, "200", "", "", sent, None))

    def _refund(self, pid, status, amount, final, out) -> None:
        asked = final + timedelta(hours=2)
        done = status == "REFUNDED"
        out["refund"].append((asked, asked + timedelta(seconds=30 if done else 0), pid, amount,
                              "customer paid twice", "staff:admin", "reversal", "COMPLETED" if done else "PENDING",
                              f"AG_{pid:012d}", f"AG_{pid:012d}_c" if done else None,
                              f"R{pid:09d}" if done else None, "0" if done else None, "" if not done else "OK"))
        out["audit_log"].append(("staff:admin", "refund", "payment", str(pid), "customer paid twice",
                                 {"amount": amount}, asked))


def _digits(value: int, alphabet: str, width: int) -> str:
    base = len(alphabet)
    chars = []
    for _ in range(width):
        value, rem = divmod(value, base)
        chars.append(alphabet[rem])
    return "".join(reversed(chars))


def _outcome(status: str, rng: random.Random) -> tuple[str | None, str | None, str]:
    """(result code, result description, status message) for a payment's final status."""
    if status in PAID:
        return "0", "The service request is processed successfully.", "Payment received."
    if status == "CANCELLED":
        return "1032", "Request cancelled by user", "The customer cancelled the M-Pesa prompt."
    if status == "FAILED":
        code, desc = rng.choice(FAILED_CODES)
        return code, desc, f"M-Pesa refused the payment: {desc}"
    if status == "EXPIRED":
        return ("1037", "DS timeout user cannot be reached", "No answer from M-Pesa in time.") \
            if rng.random() < 0.6 else (None, None, "No answer from M-Pesa in time.")
    return None, None, "Waiting for the customer to enter their PIN." if status == "PROCESSING" else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rebuild", action="store_true", help="regenerate even when a cached file exists")
    args = parser.parse_args()
    path, meta = ensure(args.n, seed=args.seed, rebuild=args.rebuild,
                        log=lambda msg: print(msg, file=sys.stderr, flush=True))
    slim = {k: v for k, v in meta.items() if k not in ("receipts", "rich_ids")}
    print(json.dumps({"path": str(path), **slim}, indent=1))


if __name__ == "__main__":
    main()
