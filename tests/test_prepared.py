"""shared.db.prepared: a query built once gives the same rows, with the same conversions, as peewee's own."""
import pytest

from shared.db.prepared import Prepared
from shared.db import db, write_tx
from shared.models import Payment, UssdSession

PHONE = "254712345678"


def payment(i: int, phone: str = PHONE, status: str = "COMPLETED") -> Payment:
    return Payment.create(reference=f"LPPREP{i:03d}", phone=phone, amount=100 + i, account="ACC42", channel="ussd",
                          status=status, mpesa_receipt=f"RP{i:08d}")


def test_rows_match_peewee_and_columns_are_converted(conn):
    for i in range(5):
        payment(i)
    payment(9, phone="254700000009")
    built = []

    def build(p):
        built.append(1)
        return (Payment.select(Payment.id, Payment.reference, Payment.phone, Payment.created_at)
                .where(Payment.phone_hash == p[0]).order_by(Payment.id.desc()).limit(3))

    recent = Prepared(build, Payment.phone_hash)
    expected = list(build([PHONE]).where(Payment.phone_hash == PHONE))  # the same query through peewee
    for _ in range(3):
        rows = recent.rows(PHONE)  # the phone is hashed on the way, as peewee hashes it
        assert [(r.id, r.reference, r.phone, r.created_at) for r in rows] == [
            (e.id, e.reference, e.phone, e.created_at) for e in expected]
    assert len(rows) == 3 and rows[0].phone == PHONE  # sealed column opened, LIMIT kept
    assert len(built) == 2  # once for the comparison above, once for the prepared query: not per call
    assert recent.first("254799999999") is None


def test_full_rows_can_be_saved(conn):
    original = payment(1, status="PROCESSING")
    by_reference = Prepared(lambda p: Payment.select().where(Payment.reference == p[0]), Payment.reference)
    row = by_reference.first("LPPREP001")
    assert row.phone == PHONE and row.amount == 101 and not row.dirty_fields
    row.status = "COMPLETED"
    row.save()
    assert Payment.get_by_id(original.id).status == "COMPLETED"
    assert Payment.get_by_id(original.id).phone_hash == Payment.get(Payment.phone_hash == PHONE).phone_hash


def test_insert_and_update_convert_each_value(conn):
    insert = Prepared(lambda p: UssdSession.insert({UssdSession.session_id: p[0], UssdSession.phone: p[1],
                                                    UssdSession.inputs: p[2]}),
                      UssdSession.session_id, UssdSession.phone, UssdSession.inputs)
    update = Prepared(lambda p: UssdSession.update({UssdSession.inputs: p[0]}).where(UssdSession.session_id == p[1]),
                      UssdSession.inputs, UssdSession.session_id)
    with write_tx():
        insert.execute("s1", PHONE, ["1", "AB*1"])
        assert update.execute(["1", "AB*1", "500"], "s1") == 1
        assert update.execute(["x"], "nobody") == 0
    row = UssdSession.get(UssdSession.session_id == "s1")
    assert row.phone == PHONE and row.inputs == ["1", "AB*1", "500"]
    raw_phone = db.execute_sql("SELECT phone FROM ussd_session").fetchone()[0]
    assert raw_phone != PHONE  # stored sealed, like any other write


def test_misuse_is_refused(conn):
    with pytest.raises(ValueError, match="not used"):
        Prepared(lambda p: Payment.select(Payment.id).where(Payment.reference == "x"), Payment.reference).rows("x")
    by_reference = Prepared(lambda p: Payment.select(Payment.id).where(Payment.reference == p[0]), Payment.reference)
    with pytest.raises(TypeError, match="expected 1 values"):
        by_reference.rows("a", "b")
    counted = Prepared(lambda p: Payment.select(Payment.id.alias("n")).where(Payment.reference == p[0]),
                       Payment.reference)
    with pytest.raises(TypeError, match="fields of its own model"):
        counted.rows("x")


def test_create_writes_what_model_create_writes(conn):
    """prepared.create: the INSERT built once per column set, the row as Model.create leaves it; defaults are
    this call's (a second row gets its own timestamp), the phone sealed and its look-up hash derived."""
    from shared.db import prepared
    from shared.models import Notification

    made = [prepared.create(Notification, channel="sms", kind="receipt", recipient=PHONE, body=f"body {i}")
            for i in range(2)]
    assert made[0].id != made[1].id and not made[0].dirty_fields
    assert made[1].created_at > made[0].created_at  # the default ran per call, not once when the SQL was built
    for row in made:
        stored = Notification.get_by_id(row.id)
        assert (stored.recipient, stored.body, stored.status, stored.attempts) == (PHONE, row.body, "QUEUED", 0)
        assert stored.created_at == row.created_at
    assert Notification.select().where(Notification.recipient_hash == PHONE).count() == 2  # the hash is the phone's
    raw = db.execute_sql("SELECT recipient FROM notification WHERE id = %s" % made[0].id).fetchone()[0]
    assert PHONE not in raw  # sealed at rest


def test_save_writes_only_the_changed_columns(conn):
    """prepared.save: an UPDATE of what changed (built once per column set); a column another writer changed
    meanwhile is left as that writer left it, and look-up hashes follow their plain values."""
    from shared.db import prepared

    mine = payment(7, status="PROCESSING")
    Payment.update(account="OTHER").where(Payment.id == mine.id).execute()  # another process, meanwhile
    mine.status = "COMPLETED"
    mine.active_phone = None
    assert prepared.save(mine) == 1 and not mine.dirty_fields
    assert prepared.save(mine) == 1  # only the re-derived hashes left to write: still one row
    stored = Payment.get_by_id(mine.id)
    assert (stored.status, stored.account, stored.active_phone) == ("COMPLETED", "OTHER", None)
    assert Payment.select().where(Payment.phone_hash == PHONE, Payment.id == mine.id).exists()


def test_create_new_writes_once_per_unique_value_in_one_statement(conn):
    from shared.db import prepared
    from shared.models import Notification

    def queue(body):
        return prepared.create_new(Notification, Notification.dedupe_key, channel="sms", kind="k",
                                   recipient=PHONE, body=body, dedupe_key="sms:1:1", status="QUEUED")

    with write_tx():
        first = queue("first")
        again = queue("second")  # the same key: nothing written, and the transaction is not aborted
        other = prepared.create_new(Notification, Notification.dedupe_key, channel="sms", kind="k",
                                    recipient=PHONE, body="other", dedupe_key="sms:1:2", status="QUEUED")
    assert first is not None and again is None and other.id != first.id
    stored = Notification.get_by_id(first.id)
    assert (stored.body, stored.recipient, stored.status) == ("first", PHONE, "QUEUED")  # sealed and opened
    assert Notification.select().count() == 2


def test_row_gives_expressions_as_the_database_answers(conn):
    from peewee import fn

    for i in range(3):
        payment(i)
    total = Prepared(lambda p: Payment.select(fn.SUM(Payment.amount), fn.COUNT(Payment.id))
                     .where(Payment.phone_hash == p[0]), Payment.phone_hash)
    assert tuple(total.row(PHONE)) == (303, 3)
    assert tuple(total.row("254799999999")) == (None, 0)
