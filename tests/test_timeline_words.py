"""The timeline in plain words (issue 14, finding 6): what the desktop's "What happened" column shows."""
from __future__ import annotations

from datetime import timedelta

from gateway.backoffice import story
from gateway.backoffice.timeline import timeline
from shared.models import InboxMessage, Notification, Payment, PaymentEvent, Refund
from shared.timeutil import utcnow


def test_a_paid_refunded_and_settled_payment_reads_as_a_story(config, database):
    t0 = utcnow() - timedelta(minutes=10)
    p = Payment.create(reference="LPSTORY01", phone="254712345678", amount=2500, account="ACC1", channel="ussd",
                       status="SETTLED", mpesa_receipt="TNR0286C18", created_at=t0)
    refund = Refund.create(payment=p, amount=200, reason="customer asked", requested_by="staff:ops1",
                           status="COMPLETED", originator_conversation_id="oc-1")
    steps = [("created", "PENDING", "PENDING", "ussd", ""), ("transition", "PENDING", "PROCESSING", "ussd", ""),
             ("transition", "PROCESSING", "COMPLETED", "daraja-callback", "The service request is processed."),
             ("transition", "COMPLETED", "REFUND_PENDING", "staff:ops1", f"refund {refund.id}: customer asked"),
             ("refund", "REFUND_PENDING", "REFUND_PENDING", "daraja-result", f"refund {refund.id} COMPLETED: done"),
             ("transition", "REFUND_PENDING", "COMPLETED", "daraja-result", f"refund {refund.id}: completed"),
             ("transition", "COMPLETED", "SETTLED", "reconciliation",
              "on M-Pesa statement 1, line 8 (receipt TNR0286C18)")]
    for n, (kind, frm, to, actor, reason) in enumerate(steps):
        PaymentEvent.create(payment=p, kind=kind, from_status=frm, to_status=to, actor=actor, reason=reason,
                            created_at=t0 + timedelta(seconds=n))
    InboxMessage.create(source="daraja.stk", body="{}", status="APPLIED", payment=p,
                        received_at=t0 + timedelta(seconds=2))
    Notification.create(channel="sms", kind="payment_completed", payment=p, recipient="254712345678", body="Paid",
                        status="DELIVERED", created_at=t0 + timedelta(seconds=3))
    said = [entry["summary"] for entry in timeline(p, reveal=False)]
    for words in ("Payment created by the customer", "Sent the M-Pesa prompt to the customer's phone",
                  "M-Pesa confirmed the payment, receipt TNR0286C18", "M-Pesa STK callback applied",
                  "Receipt SMS to 254712***678: delivered",
                  "Refund of KES 200 requested by staff:ops1: customer asked",
                  f"Refund #{refund.id}: done",
                  "Settled: found on M-Pesa statement 1, line 8",
                  f"Refund #{refund.id} of KES 200 requested by staff:ops1: customer asked — completed"):
        assert words in said, (words, said)
    assert not any("->" in s or "daraja.stk callback" in s or s == "refund" for s in said)
    assert all("254712345678" not in s for s in said)  # a viewer's timeline never shows the full phone


def test_unknown_kinds_still_say_something():
    assert story.event("stk_unknown", "sweep", "") == "Stk unknown"
    assert story.transition("PROCESSING", "FAILED", "daraja-callback", "DS timeout user cannot be reached") == \
        "Failed: DS timeout user cannot be reached"
    assert story.transition("FAILED", "COMPLETED", "staff:amina", "receipt checked") == \
        "Completed by hand by staff:amina: receipt checked"


def test_staff_actions_read_as_what_was_done_and_by_whom():
    assert story.staff_action("retry", "staff:ops1", "customer asked", None) == \
        "Started a new attempt by staff:ops1 — customer asked"
    assert story.staff_action("requery", "staff:ops1", "", None) == \
        "Asked M-Pesa for the payment's status by staff:ops1"
    assert story.staff_action("print_receipt", "staff:ops1", "", {"receipt_no": 7, "print": 2}) == \
        "Printed the receipt (receipt 7, print 2) by staff:ops1"
    assert story.staff_action("new_thing", "staff:ops1", "", None) == "New thing by staff:ops1"


def test_a_staff_status_check_reads_as_what_m_pesa_said_and_what_changed(config, database):
    """The STK-query row used to read "Stk query: STK query by staff: 4999 (left)"."""
    p = Payment.create(reference="LPQUERY01", phone="254712345678", amount=300, account="ACC1", channel="ussd",
                       status="FAILED", created_at=utcnow() - timedelta(minutes=5))
    for reason in ("STK query by staff: 4999 (left)", "STK query by staff: 1032 (cancelled)",
                   "STK query by staff: daraja_spike_arrest (query failed)"):
        PaymentEvent.create(payment=p, kind="stk_query", from_status="PROCESSING", to_status="PROCESSING",
                            actor="staff:ops1", reason=reason)
    said = [entry["summary"] for entry in timeline(p, reveal=False) if entry.get("kind") == "stk_query"]
    assert said == ["Status check by staff:ops1: M-Pesa is still waiting for the customer (code 4999)",
                    "Status check by staff:ops1: M-Pesa says the customer cancelled; now cancelled (code 1032)",
                    "Status check by staff:ops1 failed (daraja_spike_arrest); nothing changed"]
    assert not any("Stk query" in s or "STK query by staff" in s for s in said)
    assert story.event("stk_query", "staff:ops1", "odd") == "Status check by staff:ops1: odd"
    assert story.event("retried", "staff:ops1", "retried as LPJKABV5G") == "Retried as LPJKABV5G"
