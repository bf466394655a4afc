"""Statement reconciliation: receipts settle payments, guesses attach receipts, disagreements become exceptions."""
import itertools
from datetime import datetime, timedelta

import pytest

from bench.recon_data import insert_payments, make_dataset
from gateway.backoffice.serialize import payment_references
from gateway.payments import transitions
from gateway.payments.requests import create_request
from gateway.reconciliation import service
from gateway.reconciliation.service import import_statement, rematch_open, resolve_exception, run_summary
from shared.db import db
from shared.errors import InvalidInput, NotAllowed, NotFound
from shared.models import (
    Alert,
    AuditLog,
    Notification,
    Payment,
    PaymentEvent,
    PaymentRequest,
    ReconException,
    StatementImport,
    StatementLine,
)

DAY = "22-11-2026"
HEADER = ("Receipt No.,Completion Time,Initiation Time,Details,Transaction Status,Paid In,Withdrawn,Balance,"
          "Balance Confirmed,Reason Type,Other Party Info,Linked Transaction ID,A/C No.")
PHONE = "254722123904"  # fits the hint 25472****904
AT = datetime(2026, 11, 22, 6, 12, 3)  # 09:12:03 in Nairobi
_refs = itertools.count(1)


def row(receipt, time="09:12:03", amount="1,200.00", hint="25472****904", account="12345", kind="Pay Bill Online",
        day=DAY):
    return (f'{receipt},{day} {time},{day} {time},{kind} from {hint} - MARY W Acc. {account},Completed,"{amount}",,'
            f'"50,000.00",true,{kind},,,{account}')


def charge(receipt, time="09:12:03"):
    return f'{receipt}X,{DAY} {time},{DAY} {time},Business Pay Bill Charge,Completed,,3.00,"49,997.00",true,' \
           f"Pay Bill Charge,,{receipt},"


def statement(*rows, day=DAY) -> bytes:
    head = ["Organization Name:,Example Traders Ltd", "Organization Short Code:,600638",
            f"Time Period:,From,{day} 00:00:00,To,{day} 23:59:59", "Operator:,reports",
            'Opening Balance:,"48,000.00"', 'Closing Balance:,"49,207.00"', HEADER]
    return ("\n".join(head + list(rows)) + "\n").encode()


def pay(status="COMPLETED", receipt=None, amount=1200, phone=PHONE, account="12345", at=AT, **kw) -> Payment:
    paid = status in ("COMPLETED", "SETTLED", "REFUND_PENDING", "REFUNDED")
    return Payment.create(reference=f"LPT{next(_refs):06d}", phone=phone, amount=amount, account=account,
                          channel="api", status=status, mpesa_receipt=receipt, created_at=at - timedelta(seconds=30),
                          completed_at=at if paid else None,
                          active_phone=phone if status in ("PENDING", "PROCESSING") else None, **kw)


def fresh(payment: Payment) -> Payment:
    return Payment.get_by_id(payment.id)


def exceptions(kind=None) -> list[ReconException]:
    query = ReconException.select().order_by(ReconException.id)
    return list(query.where(ReconException.kind == kind) if kind else query)


def counts() -> dict:
    return {model.__name__: model.select().count() for model in
            (StatementImport, StatementLine, ReconException, Payment, PaymentEvent, Notification, Alert, AuditLog)}


@pytest.fixture
def lipa(make_app):
    """The gateway's listeners registered (as in production) and a database connection."""
    app = make_app()
    with db.connection_context():
        yield app


def test_receipt_match_settles_with_an_event(lipa):
    payment = pay(receipt="RKTQDM7W6T")
    imp = import_statement(statement(row("RKTQDM7W6T"), charge("RKTQDM7W6T")), filename="nov22.csv",
                           uploaded_by="staff:ann")
    assert fresh(payment).status == "SETTLED"
    event = PaymentEvent.get(PaymentEvent.payment == payment, PaymentEvent.to_status == "SETTLED")
    assert (event.from_status, event.actor) == ("COMPLETED", "reconciliation")
    assert f"statement {imp.id}, line 8" in event.reason
    line = StatementLine.get()
    assert (line.match, line.payment_id, line.amount, line.line_no) == ("RECEIPT", payment.id, 1200, 8)
    assert (imp.lines, imp.matched, imp.exceptions, imp.filename) == (1, 1, 0, "nov22.csv")
    assert Notification.select().where(Notification.kind == "payment_settled").count() == 0  # off by default
    assert AuditLog.get(AuditLog.action == "statement_import").actor == "staff:ann"


def test_settled_and_refunded_payments_are_matched_without_a_transition(lipa):
    settled, refunded = pay("SETTLED", receipt="RA00000001"), pay("REFUNDED", receipt="RA00000002")
    imp = import_statement(statement(row("RA00000001"), row("RA00000002", time="09:30:00")))
    assert imp.matched == 2
    assert (fresh(settled).status, fresh(refunded).status) == ("SETTLED", "REFUNDED")
    assert PaymentEvent.select().count() == 0


def test_settled_sms_is_queued_only_when_configured(make_app):
    app = make_app(config_overrides={"sms_on_settled": True})
    with db.connection_context():
        payment = pay(receipt="RB00000001")
        import_statement(statement(row("RB00000001")))
        event = PaymentEvent.get(PaymentEvent.payment == payment, PaymentEvent.to_status == "SETTLED")
        sms = Notification.get(Notification.kind == "payment_settled")
        assert (sms.recipient, sms.dedupe_key) == (PHONE, f"sms:{payment.id}:{event.id}")
        assert "confirmed on the M-Pesa statement" in sms.body
        other = pay(receipt="RB00000002", phone="254722555904")
        off = app.extensions["lipa"].config.with_overrides(sms_on_settled=False)
        import_statement(statement(row("RB00000002")), config=off)
        assert fresh(other).status == "SETTLED"
        assert Notification.select().where(Notification.kind == "payment_settled").count() == 1


def test_an_unknown_listener_still_sees_each_settlement(lipa):
    seen = []
    transitions.on_transition("test-spy", lambda p, old, new, event: seen.append((p.id, old, new)))
    try:
        payment = pay(receipt="RC00000001")
        import_statement(statement(row("RC00000001")))
    finally:
        transitions.current_hooks().listeners.pop("test-spy", None)
    assert seen == [(payment.id, "COMPLETED", "SETTLED")]


def test_amount_mismatch_is_an_exception_and_flags_the_payment(lipa):
    payment = pay(receipt="RD00000001", amount=1000)
    imp = import_statement(statement(row("RD00000001")))
    payment = fresh(payment)
    assert payment.status == "COMPLETED" and payment.flagged
    (exc,) = exceptions()
    assert (exc.kind, exc.payment_id, exc.status) == ("amount_mismatch", payment.id, "OPEN")
    assert "1200 KES" in exc.details and "Lipa has 1000" in exc.details
    assert exc.line_id == StatementLine.get().id and StatementLine.get().match == "UNMATCHED"
    assert (imp.matched, imp.exceptions) == (0, 1)


def test_resolving_an_exception_acknowledges_its_alert(lipa):
    payment = pay(receipt="RD00000002", amount=1000)
    import_statement(statement(row("RD00000002")))
    (exc,) = exceptions()
    alert = Alert.get(Alert.payment == payment.id, Alert.kind == "recon_mismatch")
    other = Alert.create(kind="late_money", message="not the statement's", payment=payment.id)
    assert not alert.acknowledged
    resolve_exception(exc.id, staff="staff:ann", note="refund agreed with the customer")
    assert Alert.get_by_id(alert.id).acknowledged and not Alert.get_by_id(other.id).acknowledged
    assert payment_references([exc]) == {payment.id: payment.reference}


def test_fuzzy_match_attaches_the_receipt_to_a_payment_confirmed_without_one(lipa):
    payment = pay(receipt=None, at=AT + timedelta(minutes=4))
    imp = import_statement(statement(row("RE00000001")))
    payment = fresh(payment)
    assert (payment.mpesa_receipt, payment.status, payment.flagged) == ("RE00000001", "SETTLED", False)
    assert StatementLine.get().match == "FUZZY"
    kinds = [e.kind for e in PaymentEvent.select().where(PaymentEvent.payment == payment).order_by(PaymentEvent.id)]
    assert kinds == ["receipt", "transition"]
    assert (imp.matched, imp.exceptions) == (1, 0)


def test_a_line_that_fits_an_unpaid_payment_completes_nothing(lipa):
    """A statement line is no proof of payment: the payment stays as it is, an exception holds the evidence."""
    payment = pay("PROCESSING", at=AT - timedelta(minutes=1))
    imp = import_statement(statement(row("RE00000002")))
    after = fresh(payment)
    assert (after.status, after.mpesa_receipt) == ("PROCESSING", None)
    (exc,) = exceptions()
    assert (exc.kind, exc.payment_id, exc.status) == ("unpaid_in_lipa", payment.id, "OPEN")
    assert "RE00000002" in exc.details and "PROCESSING" in exc.details
    assert Notification.select().count() == 0 and imp.exceptions == 1
    assert Alert.get(Alert.payment == payment).kind == "recon_unpaid_in_lipa"


@pytest.mark.parametrize("status", ["FAILED", "EXPIRED", "CANCELLED"])
def test_a_forged_line_for_a_failed_request_payment_pays_nothing(lipa, status):
    """The issue's attack: a hand-made line with a made-up receipt, the account and amount of a FAILED
    payment for a merchant's payment request: no SETTLED, no PAID request, no webhook, no SMS."""
    req = create_request(amount=1000, account="482913", callback_url="http://127.0.0.1:9/hook")
    payment = pay(status, amount=1000, account="482913", request=req)
    import_statement(statement(row("FAKEREC001", amount="1000.00", account="482913")))
    assert fresh(payment).status == status and fresh(payment).mpesa_receipt is None
    assert PaymentRequest.get_by_id(req.id).status == "OPEN"
    assert Notification.select().count() == 0  # neither webhook nor SMS
    assert [e.kind for e in exceptions()] in (["unpaid_in_lipa"], ["missing_in_lipa"])


@pytest.mark.parametrize("change", [
    {"at": AT + timedelta(minutes=11)},  # outside the ten minutes
    {"phone": "254733123904"},  # prefix differs
    {"phone": "254722123905"},  # suffix differs
    {"account": "999"},
    {"amount": 1100},
])
def test_fuzzy_match_needs_phone_amount_account_and_time(lipa, change):
    payment = pay("PROCESSING", **change)
    import_statement(statement(row("RE00000003")))
    assert fresh(payment).status == "PROCESSING"
    assert [e.kind for e in exceptions()] == ["missing_in_lipa"]


def test_two_payments_that_fit_are_not_guessed(lipa):
    first, second = pay("EXPIRED", at=AT - timedelta(minutes=3)), pay("PROCESSING", phone="254722999904")
    import_statement(statement(row("RE00000004")))
    assert (fresh(first).status, fresh(second).status) == ("EXPIRED", "PROCESSING")
    (exc,) = exceptions("missing_in_lipa")
    assert first.reference in exc.details and second.reference in exc.details


def test_money_missing_in_lipa_is_an_exception_not_a_payment(lipa):
    imp = import_statement(statement(row("RF00000001", kind="Pay Bill", hint="25471****149", account="482913",
                                         amount="10.00")))
    assert Payment.select().count() == 0  # nothing created on the statement's say-so
    (exc,) = exceptions()
    line = StatementLine.get()
    assert (exc.kind, exc.payment_id, exc.line_id) == ("missing_in_lipa", None, line.id)
    assert "RF00000001" in exc.details and "10 KES" in exc.details
    assert (line.payment_id, line.match) == (None, "UNMATCHED")
    assert (imp.lines, imp.matched, imp.exceptions) == (1, 0, 1)


def test_completed_payment_of_the_period_missing_in_the_statement(lipa):
    missing = pay(receipt="RG00000009", at=AT + timedelta(hours=2))
    later = pay(receipt="RG00000010", at=datetime(2026, 11, 23, 8, 0))  # the next day: another statement's
    waiting = pay("PROCESSING", phone="254700000001", at=AT + timedelta(hours=3))
    matched = pay(receipt="RG00000001")
    imp = import_statement(statement(row("RG00000001")))
    (exc,) = exceptions()
    assert (exc.kind, exc.payment_id, exc.line_id) == ("missing_in_statement", missing.id, None)
    assert fresh(missing).flagged and fresh(missing).status == "COMPLETED"
    assert not fresh(later).flagged and not fresh(waiting).flagged
    assert fresh(matched).status == "SETTLED"
    assert (imp.matched, imp.exceptions) == (1, 1)


def test_duplicate_receipt_within_a_file(lipa):
    payment = pay(receipt="RH00000001")
    imp = import_statement(statement(row("RH00000001"), row("RH00000001", time="09:40:00")))
    assert StatementLine.select().count() == 1
    (exc,) = exceptions()
    assert (exc.kind, exc.line_id, exc.payment_id) == ("duplicate", StatementLine.get().id, payment.id)
    assert "line 9" in exc.details
    assert (imp.lines, imp.matched, imp.exceptions) == (1, 1, 1)


def test_the_same_file_again_changes_nothing(lipa):
    pay(receipt="RI00000001")
    pay(receipt="RI00000009", at=AT + timedelta(hours=1))
    data = statement(row("RI00000001"), row("RI00000002", time="10:00:00"))
    first = import_statement(data, filename="a.csv")
    before = counts()
    again = import_statement(data, filename="renamed.csv")
    assert again.id == first.id and again.filename == "a.csv"
    assert (again.lines, again.matched, again.exceptions) == (first.lines, first.matched, first.exceptions)
    assert counts() == before


def test_an_overlapping_statement_skips_receipts_already_known(lipa):
    one, two, three = pay(receipt="RJ00000001"), pay(receipt="RJ00000002"), pay(receipt="RJ00000003")
    import_statement(statement(row("RJ00000001"), row("RJ00000002")))
    second = import_statement(statement(row("RJ00000002"), row("RJ00000003")))
    assert (second.lines, second.matched, second.exceptions) == (1, 1, 0)
    assert StatementLine.select().count() == 3
    assert {fresh(p).status for p in (one, two, three)} == {"SETTLED"}
    assert PaymentEvent.select().where(PaymentEvent.payment == two).count() == 1


def test_a_bad_file_imports_nothing(lipa):
    payment = pay(receipt="RK00000001")
    data = statement(row("RK00000001"), row("RK00000002", amount="12.50"))
    with pytest.raises(InvalidInput) as caught:
        import_statement(data)
    assert "Line 9, column Paid In" in caught.value.message
    assert caught.value.code == "invalid_statement"
    assert fresh(payment).status == "COMPLETED"
    assert StatementImport.select().count() == StatementLine.select().count() == 0


def test_a_failure_halfway_rolls_everything_back(lipa, monkeypatch):
    payment = pay("PROCESSING")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(service, "settle_many", broken)
    before = counts()
    with pytest.raises(RuntimeError):
        import_statement(statement(row("RL00000001"), row("RL00000002", time="11:00:00")))
    assert counts() == before
    assert fresh(payment).status == "PROCESSING"


def test_resolve_with_a_note_is_audited_and_only_once(lipa):
    import_statement(statement(row("RM00000001")))
    (exc,) = exceptions()
    with pytest.raises(InvalidInput):
        resolve_exception(exc.id, staff="staff:ann", note="  ")
    resolved = resolve_exception(exc.id, staff="staff:ann", note="Paid at the counter; receipt checked.")
    assert (resolved.status, resolved.resolved_by) == ("RESOLVED", "staff:ann")
    assert resolved.resolution_note == "Paid at the counter; receipt checked." and resolved.resolved_at
    audit = AuditLog.get(AuditLog.action == "recon_resolve")
    assert (audit.actor, audit.target_id, audit.reason) == ("staff:ann", str(exc.id), resolved.resolution_note)
    with pytest.raises(NotAllowed):
        resolve_exception(exc.id, staff="staff:bob", note="again")
    assert ReconException.get_by_id(exc.id).resolved_by == "staff:ann"
    with pytest.raises(NotFound):
        resolve_exception(exc.id + 100, staff="staff:ann", note="none")


def test_run_summary_counts_by_match_and_exception(lipa):
    pay(receipt="RN00000001")
    pay("PENDING", phone="254722000904", at=AT + timedelta(hours=1))
    imp = import_statement(statement(row("RN00000001"), row("RN00000002", time="10:12:00"),
                                     row("RN00000003", time="15:00:00", hint="25470****111")))
    resolve_exception(exceptions()[0].id, staff="staff:ann", note="ok")
    summary = run_summary(imp.id)
    assert summary["lines_by_match"] == {"RECEIPT": 1, "FUZZY": 1, "UNMATCHED": 1}
    assert summary["exceptions_by_kind"] == {"unpaid_in_lipa": {"OPEN": 0, "RESOLVED": 1},
                                             "missing_in_lipa": {"OPEN": 1, "RESOLVED": 0}}
    assert (summary["lines"], summary["matched"], summary["exceptions"], summary["open_exceptions"]) == (3, 2, 2, 1)
    assert summary["period"] == "22-11-2026 00:00:00 to 22-11-2026 23:59:59"
    with pytest.raises(NotFound):
        run_summary(imp.id + 1)


def test_rematch_points_out_a_payment_that_appeared_later(lipa):
    import_statement(statement(row("RP00000001")))
    late = pay("PROCESSING", at=AT - timedelta(minutes=2))
    assert rematch_open() == {"resolved": 0, "possible_duplicates": 1}
    duplicate = exceptions("duplicate")[0]
    assert (duplicate.payment_id, duplicate.line_id) == (late.id, StatementLine.get().id)
    assert "RP00000001" in duplicate.details
    assert fresh(late).flagged and fresh(late).status == "PROCESSING"
    assert rematch_open() == {"resolved": 0, "possible_duplicates": 0}


def test_a_later_statement_closes_missing_in_statement(lipa):
    late = pay(receipt="RQ00000001", at=datetime(2026, 11, 22, 20, 59, 50))  # 23:59:50 by Lipa's clock
    import_statement(statement(row("RQ00000000", time="08:00:00")))
    (exc,) = exceptions("missing_in_statement")
    assert exc.payment_id == late.id
    import_statement(statement(row("RQ00000001", time="00:00:02", day="23-11-2026"), day="23-11-2026"))
    exc = ReconException.get_by_id(exc.id)
    assert (exc.status, exc.resolved_by) == ("RESOLVED", "reconciliation")
    assert fresh(late).status == "SETTLED"
    assert rematch_open()["resolved"] == 0


def test_reconcile_job_runs_rematch(lipa):
    from gateway.jobs.registry import reconcile

    assert reconcile(None) == {"resolved": 0, "possible_duplicates": 0, "imports_resumed": 0}


def test_generated_statement_reconciles_as_expected(lipa):
    data = make_dataset(400, fuzzy_share=0.05, missed_share=0.02, unknown_share=0.02, extra=3)
    insert_payments(data.payments)
    imp = import_statement(data.csv_bytes, filename="gen.csv")
    summary = run_summary(imp.id)
    want = data.expected
    assert summary["lines_by_match"] == {"RECEIPT": want["receipt"], "FUZZY": want["fuzzy"] + want["missed"],
                                         "UNMATCHED": want["unknown"]}
    by_kind = {kind: row["OPEN"] for kind, row in summary["exceptions_by_kind"].items()}
    assert by_kind == {"missing_in_lipa": want["unknown"], "missing_in_statement": want["extra"],
                       "unpaid_in_lipa": want["missed"]}  # a missed callback is for review, never completed
    assert Payment.select().where(Payment.status == "SETTLED").count() == want["matched"] - want["missed"]
