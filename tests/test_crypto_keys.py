"""Migration 9 seals the clear rows of an older database; `rotate-keys` re-seals with a new data key (old
data still reads meanwhile) and `rotate-keys --rehash` moves every look-up hash to a new look-up key."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from gateway.notify.preferences import opted_out
from gateway.sms.ratelimit import replies_sent
from shared.db import db, init_db, is_sqlite
from shared.models import (
    IdempotencyRecord,
    InboxMessage,
    Notification,
    Payment,
    PaymentEvent,
    PaymentRequest,
    PhonePreference,
    SchemaVersion,
    StatementLine,
    UssdSession,
)
from shared.models.keystore import install_keys
from shared.models.migrations import MIGRATIONS, migrate
from shared.privacy import crypto
from shared.timeutil import utcnow
from tests.child_env import child_env
from tests.conftest import DATA_KEY, LOOKUP_KEY

ROOT = Path(__file__).resolve().parents[1]
PHONE = "254722334455"
PAYER = "254733445566"
NAME = "WANJIKU MUTHONI"
PAYER_SHA = hashlib.sha256(PAYER.encode()).hexdigest()
NEW_KEY = "k0yVQnMEFv3vIUOvBy2vkiYp7BiQGzWqpiUzTXqN4vY="
NEW_LOOKUP = "a-new-lookup-key-for-the-rotation-test-0123"
NEEDLES = (PHONE, PHONE[3:], PAYER, PAYER[3:], "WANJIKU", "MUTHONI", PAYER_SHA)


@pytest.fixture
def bound(config):
    init_db(config.database_url)
    migrate()
    with db.connection_context():
        yield config
    install_keys(config)  # the conftest keys again, whatever a test installed


def raw_rows() -> str:
    return "\n".join(repr(row) for table in db.get_tables()
                     for row in db.execute_sql(f'SELECT * FROM "{table}"').fetchall())


def insert(table: str, **values) -> None:
    columns = ", ".join(f'"{c}"' for c in values)
    marks = ", ".join([db.obj.param] * len(values))
    db.execute_sql(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', tuple(values.values()))


def back_to_schema_8() -> None:
    """The database as version 8 left it: no hash columns, clear-text indexes, VARCHAR(12) phones."""
    for index in ("payment_phone_hash", "payment_phone_hash_created_at", "notification_recipient_hash_kind_created_at",
                  "phone_preference_phone_hash"):
        db.execute_sql(f'DROP INDEX IF EXISTS "{index}"')
    for table, column in (("payment", "phone_hash"), ("payment", "payer_lookup"),
                          ("notification", "recipient_hash"), ("phone_preference", "phone_hash"),
                          *(("statement_import", c) for c in ("lines_total", "lines_done", "lease_until", "error"))):
        db.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    if not is_sqlite():
        for table, column, size in (("payment", "phone", 12), ("payment", "active_phone", 12),
                                    ("payment", "payer_name", 100), ("phone_preference", "phone", 12),
                                    ("ussd_session", "phone", 12), ("payment_request", "phone", 12)):
            db.execute_sql(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE VARCHAR({size})')
    db.execute_sql("CREATE INDEX payment_phone ON payment (phone)")
    db.execute_sql("CREATE INDEX payment_phone_created_at ON payment (phone, created_at)")
    db.execute_sql("CREATE INDEX notification_recipient_kind_created_at ON notification (recipient, kind, created_at)")
    db.execute_sql("CREATE UNIQUE INDEX phone_preference_phone ON phone_preference (phone)")
    SchemaVersion.delete().where(SchemaVersion.version >= 9).execute()


def clear_rows() -> None:
    """What a version 8 gateway stored: every phone, name and body in clear."""
    now = utcnow()
    common = dict(created_at=now, updated_at=now, amount=500, account="ACC1", description="Payment",
                  status_message="", language="en", flagged=False, flag_reason="", push_attempts=0,
                  refunded_amount=0)
    insert("payment", id=1, reference="LPCLEAR01", phone=PHONE, active_phone=PHONE, status="PROCESSING",
           channel="ussd", **common)
    insert("payment", id=2, reference="LPCLEAR02", phone="", payer_hash=PAYER_SHA, payer_name=NAME,
           status="COMPLETED", channel="c2b", **common)
    stk = {"Body": {"stkCallback": {"CallbackMetadata": {"Item": [{"Name": "PhoneNumber", "Value": int(PHONE)}]}}}}
    insert("payment_event", payment_id=1, kind="callback", actor="daraja-callback", reason="",
           payload=json.dumps(stk, sort_keys=True), created_at=now)
    insert("inbox_message", source="at.sms", body=f"from=%2B{PHONE}&text=STATUS", remote_addr="",
           status="APPLIED", note="", received_at=now)
    insert("notification", created_at=now, updated_at=now, channel="sms", kind="reply", payment_id=1,
           recipient=PHONE, language="en", body=f"Hello {NAME}", status="QUEUED", attempts=0, next_attempt_at=now,
           provider_status="", cost="", failure_reason="")
    insert("ussd_session", created_at=now, updated_at=now, session_id="ATUid_clear", phone=PHONE,
           service_code="*384*123#", inputs="[]", last_text="", last_response="")
    insert("phone_preference", created_at=now, updated_at=now, phone=PHONE, language="sw", notifications=False)
    insert("payment_request", created_at=now, updated_at=now, code="123456", account="ACC1", description="",
           phone=PHONE, status="OPEN")
    insert("statement_import", sha256="0" * 64, filename="s.csv", uploaded_by="t", period="", lines=1, matched=0,
           exceptions=0, status="DONE", created_at=now)
    insert("statement_line", statement_id=1, line_no=1, receipt="RKTCLEAR1", details=f"Pay Bill from {PAYER}",
           amount=500, account="ACC1", other_party=f"{PAYER} - {NAME}", match="UNMATCHED")
    insert("idempotency_record", scope="staff:1", key="k", request_hash="h", status_code=201,
           response_body=json.dumps({"phone": PHONE}), created_at=now)
    if not is_sqlite():  # explicit ids were given: move the sequences past them
        db.execute_sql("SELECT setval('payment_id_seq', 2)")


def test_migration_9_seals_the_clear_rows_of_a_version_8_database(bound, db_url):
    back_to_schema_8()
    clear_rows()
    assert PHONE in raw_rows() and NAME in raw_rows()
    assert migrate() == MIGRATIONS[-1][0]
    stored = raw_rows()
    for needle in NEEDLES:
        assert needle not in stored, needle
    if is_sqlite():  # secure_delete during the migration: the old clear cells are zeroed, not just freed
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        data = Path(db_url.removeprefix("sqlite:///")).read_bytes()
        for needle in NEEDLES:
            assert needle.encode() not in data, needle
    indexes = {index.name for table in ("payment", "notification", "phone_preference")
               for index in db.get_indexes(table)}
    assert {"payment_phone_hash", "payment_phone_hash_created_at", "notification_recipient_hash_kind_created_at",
            "phone_preference_phone_hash", "payment_active_phone"} <= indexes
    assert not indexes & {"payment_phone", "payment_phone_created_at", "notification_recipient_kind_created_at",
                          "phone_preference_phone"}

    # Read back through the models, and found again by phone.
    active = Payment.get(Payment.phone_hash == PHONE)
    assert (active.reference, active.phone, active.active_phone) == ("LPCLEAR01", PHONE, crypto.lookup_hash(PHONE))
    assert Payment.get(Payment.active_phone == PHONE).id == active.id
    c2b = Payment.get(Payment.payer_lookup == PAYER_SHA)
    assert (c2b.payer_name, c2b.payer_hash, c2b.phone, c2b.phone_hash) == (NAME, PAYER_SHA, "", None)
    payload = PaymentEvent.get().payload
    assert payload["Body"]["stkCallback"]["CallbackMetadata"]["Item"][0]["Value"] == int(PHONE)
    assert InboxMessage.get().body == f"from=%2B{PHONE}&text=STATUS"
    assert Notification.get(Notification.recipient_hash == PHONE).body == f"Hello {NAME}"
    assert replies_sent(PHONE) == 1
    assert UssdSession.get().phone == PHONE and PaymentRequest.get().phone == PHONE
    assert PhonePreference.get(PhonePreference.phone_hash == PHONE).language == "sw" and opted_out(PHONE)
    assert StatementLine.get().other_party == f"{PAYER} - {NAME}"
    assert json.loads(IdempotencyRecord.get().response_body) == {"phone": PHONE}


def rotate(db_url: str, tmp_path, *args: str, data_keys: str, lookup_key: str = LOOKUP_KEY) -> str:
    """The real command, in its own process, as an operator runs it."""
    env = child_env({"DATABASE_URL": db_url, "LIPA_PROFILE": "local", "LIPA_DATA_KEY": data_keys,
                     "LIPA_LOOKUP_KEY": lookup_key})  # + coverage's variables when the run measures it
    proc = subprocess.run([sys.executable, str(ROOT / "run_gateway.py"), "rotate-keys", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert DATA_KEY not in proc.stdout + proc.stderr and NEW_KEY not in proc.stdout + proc.stderr
    return proc.stdout


def sealed_tokens() -> list[str]:
    rows = [*db.execute_sql('SELECT "phone", "payer_name" FROM "payment"').fetchall(),
            *db.execute_sql('SELECT "recipient", "body" FROM "notification"').fetchall(),
            *db.execute_sql('SELECT "phone" FROM "phone_preference"').fetchall()]
    return [value for row in rows for value in row if value]


def opens(key: str, token: str) -> bool:
    try:
        Fernet(key.encode()).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


@pytest.mark.server  # a child process
def test_rotate_keys_reseals_with_the_new_key_and_rehash_moves_the_look_ups(bound, db_url, tmp_path):
    payment = Payment.create(reference="LPROT0001", phone=PHONE, payer_name=NAME, amount=10, account="A",
                             channel="api", status="PENDING", active_phone=PHONE)
    Notification.create(channel="sms", kind="reply", recipient=PHONE, body="hi", payment=payment)
    PhonePreference.create(phone=PHONE, language="sw")

    # 1. The new key goes first; until the rotation runs, data sealed with the old one still reads.
    crypto.use_keys([NEW_KEY, DATA_KEY], LOOKUP_KEY)
    assert Payment.get_by_id(payment.id).payer_name == NAME
    assert "re-sealed 5 values" in rotate(db_url, tmp_path, data_keys=f"{NEW_KEY},{DATA_KEY}")
    tokens = sealed_tokens()
    assert len(tokens) == 5 and all(opens(NEW_KEY, t) and not opens(DATA_KEY, t) for t in tokens)
    assert "re-sealed 0 values" in rotate(db_url, tmp_path, data_keys=f"{NEW_KEY},{DATA_KEY}")  # idempotent

    # 2. The old key is dropped: everything still reads with the new one alone.
    crypto.use_keys([NEW_KEY], LOOKUP_KEY)
    assert (Payment.get_by_id(payment.id).phone, Notification.get().recipient) == (PHONE, PHONE)

    # 3. A new look-up key: rehash, then every search by phone works under it (and only under it).
    out = rotate(db_url, tmp_path, "--rehash", data_keys=NEW_KEY, lookup_key=NEW_LOOKUP)
    assert "rewrote 4 look-up hashes" in out  # phone_hash, active_phone, recipient_hash, preference
    crypto.use_keys([NEW_KEY], NEW_LOOKUP)
    assert Payment.get(Payment.phone_hash == PHONE).id == payment.id
    assert Payment.get(Payment.active_phone == PHONE).id == payment.id
    assert PhonePreference.get(PhonePreference.phone_hash == PHONE).language == "sw"
    assert replies_sent(PHONE) == 1
    moved = Payment.get_by_id(payment.id).phone_hash
    crypto.use_keys([NEW_KEY], LOOKUP_KEY)
    assert moved != crypto.lookup_hash(PHONE)
