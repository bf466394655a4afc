"""Africa's Talking delivery reports through the Flask test client, form-encoded as AT posts them."""
from __future__ import annotations

import pytest

from gateway.sms import delivery
from shared.db import db
from shared.models import Alert, InboxMessage, Notification

from .conftest import QuietDispatcher, fixture_text

FIXTURE_ID = "ATXid_5b1c2e7f9a0d4e3b8c6a1f2d3e4b5c6d"
PHONE = "+254712345678"




@pytest.fixture
def dlr_app(make_app):
    """The gateway with the SMS blueprint; nothing is sent."""
    app = make_app(dispatcher=QuietDispatcher())
    return app


@pytest.fixture
def rows(dlr_app):
    with db.connection_context():
        yield db
    dlr_app.extensions["lipa"].tasks.drain()


@pytest.fixture
def report(dlr_app, rows):
    """Post one report and wait for it to be applied; returns the response."""
    client = dlr_app.test_client()

    def post(status: str, message_id: str = FIXTURE_ID, **extra):
        data = {"id": message_id, "status": status, "phoneNumber": PHONE, "networkCode": "63902",
                "retryCount": "0", **extra}
        response = client.post("/sms/delivery", data=data)
        dlr_app.extensions["lipa"].tasks.drain()
        return response

    return post


def sent_sms(message_id: str = FIXTURE_ID, status: str = "SENT") -> Notification:
    """An outbox row as the dispatcher leaves it once AT accepted the message."""
    return Notification.create(channel="sms", kind="payment_completed", recipient="254712345678", body="Paid.",
                               status=status, provider_message_id=message_id, provider_status="Success")


def fresh(row: Notification) -> Notification:
    return Notification.get_by_id(row.id)


def test_success_marks_the_sms_delivered(report):
    sms = sent_sms()
    response = report("Success")
    assert response.status_code == 200 and response.get_json() == {"status": "accepted"}
    sms = fresh(sms)
    assert (sms.status, sms.provider_status, sms.failure_reason) == ("DELIVERED", "Success", "")
    assert sms.delivered_at is not None
    row = InboxMessage.get(InboxMessage.source == "at.delivery")
    assert (row.status, row.dedupe_key) == ("APPLIED", f"at.dlr:{FIXTURE_ID}:Success")


def test_recorded_failure_with_user_in_blacklist(dlr_app, rows):
    sms = sent_sms()
    raw = fixture_text("at_delivery_report.txt").strip()
    response = dlr_app.test_client().post("/sms/delivery", data=raw,
                                          content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    dlr_app.extensions["lipa"].tasks.drain()
    sms = fresh(sms)
    assert (sms.status, sms.provider_status, sms.failure_reason) == ("FAILED", "Failed", "UserInBlackList")
    assert InboxMessage.get(InboxMessage.source == "at.delivery").body == raw


@pytest.mark.parametrize("status, expected", [
    ("Sent", "SENT"), ("Submitted", "SENT"), ("Buffered", "SENT"), ("Success", "DELIVERED"),
    ("Rejected", "FAILED"), ("Failed", "FAILED"), ("AbsentSubscriber", "FAILED"), ("Expired", "FAILED"),
])
def test_every_documented_status_maps(report, status, expected):
    sms = sent_sms(status="SENDING")
    assert report(status).status_code == 200
    sms = fresh(sms)
    assert (sms.status, sms.provider_status) == (expected, status)
    if expected == "FAILED":
        assert sms.failure_reason == status  # no failureReason sent: the status is the reason


def test_a_repeated_report_is_absorbed(report):
    sms = sent_sms()
    first, again = report("Success"), report("Success")
    assert (first.get_json()["status"], again.get_json()["status"]) == ("accepted", "duplicate")
    assert InboxMessage.select().count() == 1
    assert fresh(sms).status == "DELIVERED"


@pytest.mark.parametrize("late", ["Sent", "Buffered", "Failed"])
def test_a_late_report_never_takes_back_delivered(report, late):
    sms = sent_sms()
    report("Success")
    delivered_at = fresh(sms).delivered_at
    assert report(late, failureReason="DeliveryFailure").status_code == 200
    sms = fresh(sms)
    assert (sms.status, sms.provider_status, sms.delivered_at) == ("DELIVERED", "Success", delivered_at)
    assert "ignored" in InboxMessage.get(InboxMessage.dedupe_key == f"at.dlr:{FIXTURE_ID}:{late}").note


def test_a_late_sent_after_failed_stays_failed(report):
    sms = sent_sms()
    report("Failed", failureReason="UserInBlackList")
    report("Sent")
    assert (fresh(sms).status, fresh(sms).failure_reason) == ("FAILED", "UserInBlackList")


def test_unknown_message_id_is_kept_flagged_with_an_alert(report):
    sent_sms()
    assert report("Success", message_id="ATXid_nobody_sent_this").status_code == 200
    row = InboxMessage.get(InboxMessage.source == "at.delivery")
    assert row.status == "FLAGGED"
    [alert] = Alert.select()
    assert (alert.kind, alert.inbox_id) == ("unknown_delivery_report", row.id)
    assert "ATXid_nobody_sent_this" in alert.message
    assert Notification.get(Notification.provider_message_id == FIXTURE_ID).status == "SENT"


@pytest.mark.parametrize("name, data, content_type", [
    ("missing id", {"status": "Success", "phoneNumber": PHONE}, None),
    ("missing status", {"id": FIXTURE_ID, "phoneNumber": PHONE}, None),
    ("unknown status", {"id": FIXTURE_ID, "status": "Exploded"}, None),
    ("id too long", {"id": "A" * 65, "status": "Success"}, None),
    ("huge id", {"id": "A" * 10_000, "status": "Success"}, None),
    ("empty body", b"", "application/x-www-form-urlencoded"),
    ("binary body", bytes(range(256)) * 4, "application/x-www-form-urlencoded"),
    ("json body", b'{"id": "x", "status": "Success"}', "application/json"),
])
def test_malformed_reports_are_stored_and_answered_400_json(dlr_app, rows, name, data, content_type):
    sms = sent_sms()
    kwargs = {"content_type": content_type} if content_type else {}
    response = dlr_app.test_client().post("/sms/delivery", data=data, **kwargs)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_report" and error["message"]
    dlr_app.extensions["lipa"].tasks.drain()
    [row] = InboxMessage.select()
    assert (row.source, row.status) == ("at.delivery", "REJECTED")
    assert fresh(sms).status == "SENT"


def test_applying_a_stored_report_twice_changes_nothing_more(report):
    sms = sent_sms()
    report("Failed", failureReason="UserInBlackList")
    row = InboxMessage.get(InboxMessage.source == "at.delivery")
    assert delivery.apply_delivery(row.id) == "APPLIED"
    assert fresh(sms).status == "FAILED"


def test_status_spelling_is_read_as_documented():
    assert delivery.report_status(" success ") == "Success"
    assert delivery.report_status("ABSENTSUBSCRIBER") == "AbsentSubscriber"
    assert delivery.report_status("Delivered") is None
