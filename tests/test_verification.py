"""Manual resolution with evidence: a receipt is checked with M-Pesa's Transaction Status (the simulator
answers it asynchronously, like Daraja) before a payment completes by hand."""
from __future__ import annotations

import requests

from gateway.jobs.registry import process_inbox
from shared.db import db
from shared.models import AuditLog, InboxMessage, Payment, PaymentEvent, Verification
from tests.helpers import staff_headers, wait_for

PHONE = "254708374149"


def paid_in_simulator(sim, amount: int) -> str:
    """A receipt M-Pesa (the simulator) issued for ``amount`` whose callback never reached the gateway."""
    sim.daraja.set_outcome(PHONE, "no_callback")
    push = sim.daraja.start_push({"PhoneNumber": PHONE, "Amount": amount, "AccountReference": "ACC42",
                                  "CallBackURL": "http://127.0.0.1:9/never"})
    sim.daraja.set_outcome(PHONE, None)
    return push.receipt


def failed_payment(amount=1500, ref="LPVER0001") -> Payment:
    with db.connection_context():
        return Payment.create(reference=ref, phone=PHONE, amount=amount, account="ACC42", channel="ussd",
                              status="FAILED", result_code="1037", result_desc="No response from user")


def heads():
    with db.connection_context():
        return staff_headers()


def resolve(live, payment, headers, **body):
    body = {"status": "COMPLETED", "reason": "customer showed the M-Pesa SMS", **body}
    return requests.post(f"{live.url}/api/v1/payments/{payment.id}/resolve", json=body, headers=headers, timeout=10)


def decided(verification_id: int) -> Verification:
    def done():
        with db.connection_context():
            v = Verification.get_by_id(verification_id)
            return v if v.state != "requested" else None
    return wait_for(done)


def fresh(payment) -> Payment:
    with db.connection_context():
        return Payment.get_by_id(payment.id)


def test_completed_by_hand_needs_a_receipt(live, sim):
    payment, staff = failed_payment(), heads()
    answer = resolve(live, payment, staff["admin"])
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "receipt_required"
    assert fresh(payment).status == "FAILED"


def test_refund_states_by_hand_refused(live, sim):
    staff = heads()
    with db.connection_context():
        paid = Payment.create(reference="LPVER0002", phone=PHONE, amount=100, account="ACC42", channel="ussd",
                              status="COMPLETED", mpesa_receipt="QKV0000001")
    for status in ("REFUND_PENDING", "REFUNDED"):
        answer = resolve(live, paid, staff["admin"], status=status)
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "refund_only"
    assert fresh(paid).status == "COMPLETED"


def test_unknown_receipt_refused_after_verification(live, sim):
    payment, staff = failed_payment(), heads()
    answer = resolve(live, payment, staff["admin"], receipt="QKX1234567")
    assert answer.status_code == 202, answer.text
    verification = answer.json()["verification"]
    assert (verification["state"], verification["receipt"], verification["amount"]) == ("requested", "QKX1234567",
                                                                                         1500)
    v = decided(verification["id"])
    assert v.state == "refused" and "does not confirm receipt QKX1234567" in v.message and "2001" in v.message
    with db.connection_context():
        assert Payment.get_by_id(payment.id).status == "FAILED"
        assert Payment.get_by_id(payment.id).mpesa_receipt is None
        assert PaymentEvent.select().where(PaymentEvent.payment == payment.id,
                                           PaymentEvent.kind == "verification").count() == 1
        assert AuditLog.get(AuditLog.action == "verification_refused").target_id == str(v.id)


def test_known_receipt_for_another_amount_refused(live, sim):
    receipt = paid_in_simulator(sim, 900)
    payment, staff = failed_payment(amount=1500), heads()
    v = decided(resolve(live, payment, staff["admin"], receipt=receipt).json()["verification"]["id"])
    assert v.state == "refused" and "KES 900" in v.message
    assert fresh(payment).status == "FAILED"


def test_known_receipt_completes_once(live, sim):
    receipt = paid_in_simulator(sim, 1500)
    payment, staff = failed_payment(amount=1500), heads()
    assert resolve(live, payment, staff["operator"], receipt=receipt).status_code == 403
    answer = resolve(live, payment, staff["admin"], receipt=receipt.lower())
    assert answer.status_code == 202
    again = resolve(live, payment, staff["admin"], receipt=receipt)
    assert again.status_code == 409 and again.json()["error"]["code"] == "verification_open"
    v = decided(answer.json()["verification"]["id"])
    assert v.state == "confirmed" and v.conversation_id
    done = fresh(payment)
    assert (done.status, done.mpesa_receipt, done.completed_at is not None) == ("COMPLETED", receipt, True)
    sim.daraja.fire_async_now()  # nothing more to post; a replayed Result is a duplicate
    with db.connection_context():
        row = InboxMessage.select().where(InboxMessage.source == "daraja.result").get()
        assert row.status == "APPLIED"
        events = list(PaymentEvent.select().where(PaymentEvent.payment == payment.id,
                                                  PaymentEvent.to_status == "COMPLETED"))
        assert len(events) == 1 and events[0].payload["receipt"] == receipt
        assert events[0].payload["requested_by"] == "staff:admin"
        requested = AuditLog.get(AuditLog.action == "resolve_requested")
        assert (requested.actor, requested.details["receipt"]) == ("staff:admin", receipt)
    replay = requests.post(f"{live.url}/mpesa/result/{live.app.extensions['lipa'].callback_token}",
                           data=row.body if isinstance(row.body, str) else row.body, timeout=10,
                           headers={"Content-Type": "application/json"})
    assert replay.status_code == 200
    assert fresh(payment).status == "COMPLETED"
    with db.connection_context():
        assert PaymentEvent.select().where(PaymentEvent.payment == payment.id,
                                           PaymentEvent.to_status == "COMPLETED").count() == 1


def test_daraja_unreachable_stays_requested_and_process_inbox_asks_again(live, sim):
    receipt = paid_in_simulator(sim, 1500)
    payment, staff = failed_payment(amount=1500), heads()
    sim.daraja.set_fault("transaction_status", "internal")
    answer = resolve(live, payment, staff["admin"], receipt=receipt)
    vid = answer.json()["verification"]["id"]
    lipa = live.app.extensions["lipa"]
    lipa.tasks.drain()
    with db.connection_context():
        v = Verification.get_by_id(vid)
        assert (v.state, v.conversation_id, v.attempts) == ("requested", None, 1)
        Verification.update(updated_at=v.updated_at.replace(year=2000)).where(Verification.id == vid).execute()
        assert process_inbox(lipa)["verifications_sent"] == 1
    assert decided(vid).state == "confirmed"
    assert fresh(payment).status == "COMPLETED"


def test_flag_review_clear_and_confirm_in_the_timeline(client, conn):
    staff = staff_headers()
    payment = Payment.create(reference="LPVER0003", phone=PHONE, amount=100, account="ACC42", channel="ussd",
                             status="COMPLETED", mpesa_receipt="QKV0000003", flagged=True,
                             flag_reason="rule amount: too much")
    url = f"/api/v1/payments/{payment.id}/flag"
    assert client.post(url, headers=staff["viewer"], json={"action": "clear", "reason": "x"}).status_code == 403
    bad = client.post(url, headers=staff["operator"], json={"action": "ignore", "reason": "x"})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_action"
    assert client.post(url, headers=staff["operator"], json={"action": "clear"}).status_code == 400
    cleared = client.post(url, headers=staff["operator"], json={"action": "clear", "reason": "regular customer"})
    assert cleared.status_code == 200 and cleared.get_json()["flagged"] is False
    assert Payment.get_by_id(payment.id).flagged is False
    confirmed = client.post(url, headers=staff["admin"], json={"action": "confirm", "reason": "stolen phone"})
    assert confirmed.status_code == 200 and confirmed.get_json()["flagged"] is True
    detail = client.get(f"/api/v1/payments/{payment.id}", headers=staff["viewer"]).get_json()
    summaries = [item["summary"] for item in detail["events"]]
    assert "flag cleared: regular customer" in summaries and "flag confirmed: stolen phone" in summaries
    assert [a.action for a in AuditLog.select().where(AuditLog.action.startswith("flag_"))] == [
        "flag_clear", "flag_confirm"]


def second_admin() -> dict:
    from gateway.backoffice import auth

    with db.connection_context():
        auth.create_staff("admin2", "admin2-password", "admin")
        return {"Authorization": f"Bearer {auth.login('admin2', 'admin2-password')[0]}"}


def test_over_the_four_eyes_limit_waits_for_a_second_admin(live, sim):
    receipt = paid_in_simulator(sim, 25_000)
    payment, staff, other = failed_payment(amount=25_000), heads(), second_admin()
    assert resolve(live, payment, staff["admin"]).json()["error"]["code"] == "receipt_required"
    answer = resolve(live, payment, staff["admin"], receipt=receipt)
    assert answer.status_code == 202, answer.text
    approval = answer.json()["approval"]
    assert (approval["state"], approval["action"], approval["amount"]) == ("pending", "resolve", 25_000)
    listed = requests.get(f"{live.url}/api/v1/approvals", headers=other, timeout=10).json()["items"]
    assert [a["id"] for a in listed] == [approval["id"]]
    assert requests.get(f"{live.url}/api/v1/approvals", headers=staff["operator"], timeout=10).status_code == 403
    url = f"{live.url}/api/v1/approvals/{approval['id']}"
    same = requests.post(url, json={"decision": "approve", "reason": "ok"}, headers=staff["admin"], timeout=10)
    assert same.status_code == 403 and same.json()["error"]["code"] == "same_admin"
    assert "another admin" in same.json()["error"]["message"]
    with db.connection_context():
        assert Verification.select().count() == 0 and Payment.get_by_id(payment.id).status == "FAILED"
    approved = requests.post(url, json={"decision": "approve", "reason": "checked the SMS"}, headers=other,
                             timeout=10)
    assert approved.status_code == 200, approved.text
    body = approved.json()["approval"]
    assert (body["state"], body["decided_by"]) == ("approved", "staff:admin2")
    assert decided(body["outcome"]["verification_id"]).state == "confirmed"
    assert fresh(payment).status == "COMPLETED"
    again = requests.post(url, json={"decision": "approve", "reason": "x"}, headers=other, timeout=10)
    assert again.status_code == 409
    with db.connection_context():
        actions = [a.action for a in AuditLog.select().where(AuditLog.action.startswith("approval_"))]
        assert actions == ["approval_requested", "approval_approved"]


def test_a_large_refund_waits_and_can_be_rejected(live, sim):
    staff, other = heads(), second_admin()
    with db.connection_context():
        paid = Payment.create(reference="LPVER0004", phone=PHONE, amount=20_000, account="ACC42", channel="ussd",
                              status="COMPLETED", mpesa_receipt="QKV0000004")
    answer = requests.post(f"{live.url}/api/v1/payments/{paid.id}/refund", headers=staff["admin"], timeout=10,
                           json={"amount": 15_000, "reason": "customer asked"})
    assert answer.status_code == 202 and answer.json()["approval"]["action"] == "refund"
    url = f"{live.url}/api/v1/approvals/{answer.json()['approval']['id']}"
    rejected = requests.post(url, json={"decision": "reject", "reason": "no proof"}, headers=other, timeout=10)
    assert rejected.status_code == 200 and rejected.json()["approval"]["state"] == "rejected"
    with db.connection_context():
        assert Payment.get_by_id(paid.id).status == "COMPLETED" and not list(Payment.get_by_id(paid.id).refunds)


def exception_for(receipt: str, amount: int, payment=None, n=1):
    """A statement line that matched no paid payment, open for review (as the statement import leaves it)."""
    from shared.models import ReconException, StatementImport, StatementLine

    with db.connection_context():
        imp = StatementImport.create(sha256=f"{n:064d}", filename="nov.csv", uploaded_by="staff:operator")
        line = StatementLine.create(statement=imp, line_no=n, receipt=receipt, amount=amount, account="ACC42",
                                    details="Customer Payment", other_party="2547****149 - MARY")
        return ReconException.create(statement=imp, kind="missing_in_lipa", line=line, payment=payment,
                                      details=f"{amount} KES not in Lipa")


def confirm(live, exc, headers, **body):
    return requests.post(f"{live.url}/api/v1/reconciliation/exceptions/{exc.id}/confirm", headers=headers,
                         json={"reason": "checked the statement", **body}, timeout=10)


def test_exception_confirm_with_an_unknown_receipt_is_refused(live, sim):
    from shared.models import ReconException

    payment, staff = failed_payment(amount=700), heads()
    exc = exception_for("FAKEREC001", 700, payment=payment.id)
    assert confirm(live, exc, staff["operator"]).status_code == 403
    answer = confirm(live, exc, staff["admin"])
    assert answer.status_code == 202, answer.text
    v = decided(answer.json()["verification"]["id"])
    assert v.state == "refused" and "FAKEREC001" in v.message
    assert fresh(payment).status == "FAILED"
    with db.connection_context():
        assert ReconException.get_by_id(exc.id).status == "OPEN"


def test_exception_confirm_with_a_known_receipt_completes_once(live, sim):
    from shared.models import ReconException

    receipt = paid_in_simulator(sim, 700)
    payment, staff = failed_payment(amount=700), heads()
    exc = exception_for(receipt, 700, payment=payment.id)
    answer = confirm(live, exc, staff["admin"])
    assert confirm(live, exc, staff["admin"]).json()["error"]["code"] == "verification_open"
    assert decided(answer.json()["verification"]["id"]).state == "confirmed"
    done = fresh(payment)
    assert (done.status, done.mpesa_receipt) == ("COMPLETED", receipt)
    with db.connection_context():
        row = ReconException.get_by_id(exc.id)
        assert (row.status, row.resolved_by) == ("RESOLVED", "staff:admin")
        assert PaymentEvent.select().where(PaymentEvent.payment == payment.id,
                                           PaymentEvent.to_status == "COMPLETED").count() == 1
    assert confirm(live, exc, staff["admin"]).json()["error"]["code"] == "already_resolved"


def test_exception_confirm_of_money_no_payment_holds_records_it(live, sim):
    receipt = paid_in_simulator(sim, 450)
    staff = heads()
    exc = exception_for(receipt, 450, n=2)
    assert decided(confirm(live, exc, staff["admin"]).json()["verification"]["id"]).state == "confirmed"
    with db.connection_context():
        payment = Payment.get(Payment.mpesa_receipt == receipt)
        assert (payment.status, payment.amount, payment.flagged) == ("COMPLETED", 450, True)


def test_a_queue_timeout_ends_the_check_in_error_and_a_new_one_may_be_asked(live, sim):
    receipt = paid_in_simulator(sim, 1500)
    sim.daraja.set_reversal_outcome(receipt, "timeout")
    payment, staff = failed_payment(amount=1500), heads()
    v = decided(resolve(live, payment, staff["admin"], receipt=receipt).json()["verification"]["id"])
    assert v.state == "error" and "timed out" in v.message
    assert fresh(payment).status == "FAILED"
    sim.daraja.set_reversal_outcome(receipt, None)
    again = resolve(live, payment, staff["admin"], receipt=receipt)
    assert decided(again.json()["verification"]["id"]).state == "confirmed"
    assert fresh(payment).status == "COMPLETED"
