"""GET /api/v1/events: cursor continuity over three sources, long-poll, validation and roles."""
import base64
import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest

from gateway.backoffice import feed
from shared.db import db, write_tx
from shared.models import Alert, Notification, Payment, PaymentEvent
from shared.timeutil import utcnow

URL = "/api/v1/events"


@pytest.fixture
def app(quiet_app):
    return quiet_app


@pytest.fixture
def viewer(as_):
    """A viewer's bearer header, and under "merchant" a merchant key's."""
    return {**as_["viewer"], "merchant": as_["merchant"]["Authorization"]}


class Writer:
    """Makes payment events, alerts and notification changes, as the gateway does, in its own transactions."""

    def __init__(self):
        self.count = 0

    def payment(self) -> Payment:
        self.count += 1
        with write_tx():
            return Payment.create(reference=f"LP{self.count:06d}", phone=f"2547{self.count:08d}", amount=100,
                                  account="A1", channel="api")

    def event(self, payment: Payment, kind: str = "transition") -> PaymentEvent:
        with write_tx():
            return PaymentEvent.create(payment=payment, kind=kind, from_status="PENDING", to_status="PROCESSING",
                                       actor="test")

    def alert(self, payment: Payment) -> Alert:
        with write_tx():
            return Alert.create(kind="late_money", message="late", payment=payment)

    def notification(self, payment: Payment) -> Notification:
        with write_tx():
            return Notification.create(channel="sms", kind="payment_completed", payment=payment,
                                       recipient="254700000000", body="x")

    def touch(self, note: Notification, status: str) -> None:
        with write_tx():
            Notification.update(status=status, updated_at=utcnow()).where(Notification.id == note.id).execute()


def read_all(client, headers, after=None, limit=3):
    """Page through the feed until it is empty; the items and the last cursor."""
    items = []
    while True:
        query = {"limit": limit, **({"after": after} if after else {})}
        body = client.get(URL, query_string=query, headers=headers).get_json()
        assert "next_cursor" in body
        after = body["next_cursor"]
        if not body["items"]:
            return items, after
        items += body["items"]


def test_every_change_once_in_order_over_pages(client, viewer):
    w = Writer()
    with db.connection_context():
        p = w.payment()
        e1, note, a1, e2 = w.event(p), w.notification(p), w.alert(p), w.event(p, "flag")
        w.touch(note, "SENT")
    time.sleep(feed.SETTLE_S)  # PostgreSQL shows a notification change once it has settled
    items, cursor = read_all(client, viewer, limit=2)
    assert [(i["type"], i["id"]) for i in items] == [
        ("payment_event", e1.id), ("alert", a1.id), ("payment_event", e2.id), ("notification", note.id)]
    assert items[0]["reference"] == p.reference and items[0]["to_status"] == "PROCESSING"
    assert items[0]["payment_id"] == p.id  # the desktop follows rows by it
    assert items[1]["kind"] == "late_money" and items[3]["status"] == "SENT" and items[3]["payment_id"] == p.id
    assert all(i["at"].endswith("Z") for i in items)
    with db.connection_context():
        w.touch(note, "DELIVERED")
    time.sleep(feed.SETTLE_S)
    again = client.get(URL, query_string={"after": cursor}, headers=viewer).get_json()
    assert [(i["type"], i["status"]) for i in again["items"]] == [("notification", "DELIVERED")]


def test_no_change_missed_or_repeated_while_changes_keep_arriving(client, viewer):
    w = Writer()
    made = {"payment_event": set(), "alert": set(), "notification": set()}

    def write():
        with db.connection_context():
            for n in range(40):
                p = w.payment()
                made["payment_event"].add(w.event(p).id)
                if n % 3 == 0:
                    made["alert"].add(w.alert(p).id)
                if n % 4 == 0:
                    note = w.notification(p)
                    made["notification"].add(note.id)
                    w.touch(note, "SENT")
                time.sleep(0.003)

    thread = threading.Thread(target=write)
    thread.start()
    seen, after = [], None
    while thread.is_alive():
        items, after = read_all(client, viewer, after=after, limit=3)
        seen += items
    thread.join()
    time.sleep(feed.SETTLE_S)
    items, after = read_all(client, viewer, after=after, limit=3)
    seen += items
    for kind in ("payment_event", "alert"):
        ids = [i["id"] for i in seen if i["type"] == kind]
        assert sorted(ids) == sorted(made[kind]) and len(ids) == len(set(ids))
    assert {i["id"] for i in seen if i["type"] == "notification"} == made["notification"]


def test_long_poll_returns_a_change_committed_while_waiting(client, viewer):
    w = Writer()
    with db.connection_context():
        p = w.payment()
    cursor = client.get(URL, query_string={"after": "now"}, headers=viewer).get_json()["next_cursor"]

    def later():
        time.sleep(0.3)
        with db.connection_context():
            w.event(p)

    thread = threading.Thread(target=later)
    thread.start()
    started = time.monotonic()
    body = client.get(URL, query_string={"after": cursor, "wait": 5}, headers=viewer).get_json()
    elapsed = time.monotonic() - started
    thread.join()
    assert [i["type"] for i in body["items"]] == ["payment_event"] and body["next_cursor"] != cursor
    assert 0.2 < elapsed < 2.0


def test_wait_zero_answers_at_once_with_a_cursor(client, viewer):
    started = time.monotonic()
    body = client.get(URL, query_string={"after": "now", "wait": 0}, headers=viewer).get_json()
    assert body["items"] == [] and body["next_cursor"] and time.monotonic() - started < 1.0
    assert client.get(URL, headers=viewer).get_json()["items"] == []


def test_waits_until_the_deadline_when_nothing_happens(client, viewer):
    started = time.monotonic()
    body = client.get(URL, query_string={"after": "now", "wait": 0.6}, headers=viewer).get_json()
    assert body["items"] == [] and 0.5 < time.monotonic() - started < 2.0


@pytest.mark.parametrize("query", [
    {"wait": 999}, {"wait": -1}, {"wait": "soon"}, {"wait": "nan"}, {"after": "garbage!"},
    {"after": base64.urlsafe_b64encode(b"id:5").decode()}, {"after": base64.urlsafe_b64encode(b"p1.a2.nx|3").decode()},
    {"limit": 0}, {"limit": 501},
])
def test_invalid_arguments_are_400(client, viewer, query):
    response = client.get(URL, query_string=query, headers=viewer)
    assert response.status_code == 400 and "error" in response.get_json()


def test_roles(client, viewer):
    assert client.get(URL).status_code == 401
    assert client.get(URL, headers={"Authorization": viewer["merchant"]}).status_code == 403


def test_cursor_round_trip():
    cursor = feed.Cursor(event=5, alert=2, note_at=utcnow(), note_id=9)
    assert feed.decode(feed.encode(cursor)) == cursor
    assert feed.decode(feed.encode(feed.Cursor())) == feed.Cursor() == feed.decode(None)


def test_a_young_gap_in_ids_is_waited_on():
    now = utcnow()
    rows = [SimpleNamespace(id=1, created_at=now), SimpleNamespace(id=3, created_at=now)]
    assert [r.id for r in feed._contiguous(rows, 0, now)] == [1]
    old = now + timedelta(seconds=feed.GAP_WAIT_S + 0.1)
    assert [r.id for r in feed._contiguous(rows, 0, old)] == [1, 3]


def test_shutdown_releases_waiting_readers(app):
    with db.connection_context():
        cursor = feed.tail()
    feed.STOPPING.set()
    try:
        started = time.monotonic()
        with db.connection_context():
            assert feed.wait_for_items(cursor, wait=5)[0] == []
        assert time.monotonic() - started < 1.0
    finally:
        feed.STOPPING.clear()


def test_release_gives_the_connection_back_between_polls(app, monkeypatch):
    closes = []
    real_close = db.obj.close
    monkeypatch.setattr(db.obj, "close", lambda: closes.append(1) or real_close())
    db.connect(reuse_if_open=True)  # as a request does (never inside connection_context: close() resets it)
    cursor = feed.tail()
    assert feed.wait_for_items(cursor, wait=0.3, release=False, interval=0.1) == ([], cursor)
    assert closes == []
    assert feed.wait_for_items(cursor, wait=0.3, release=True, interval=0.1) == ([], cursor)
    assert len(closes) >= 2
    db.close()
