"""Refunds: request, send (reversal and B2C) through the simulator, cancel, the SecurityCredential."""
from __future__ import annotations

import base64
import datetime as dt
import logging
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from gateway.providers.daraja.urls import result_url, timeout_url
from gateway.refunds import cancel_refund, request_refund, send_refund
from gateway.providers.daraja import credential as cred
from shared.config import load_config
from shared.db import db
from shared.errors import InvalidInput, NotAllowed
from shared.models import Alert, AuditLog, Notification, Payment, PaymentEvent, Refund
from shared.timeutil import utcnow
from tests.conftest import DATA_KEY, LOOKUP_KEY
from tests.helpers import wait_for

PHONE = "254708374149"
STAFF = "staff:alice"


@pytest.fixture
def app(app, sim):
    sim.daraja.callback_delay = 60  # no Result is posted unless a test fires it
    return app


@pytest.fixture
def live(live, sim):
    sim.daraja.callback_delay = 0.3  # the acceptance commits before the Result arrives
    return live


def make_payment(amount=1000, status="COMPLETED", receipt="NLJ7RT61SV", phone=PHONE, ref="LPREF0001"):
    return Payment.create(reference=ref, phone=phone, amount=amount, account="ACC42", channel="ussd",
                          status=status, mpesa_receipt=receipt, completed_at=utcnow())


def send(app, refund):
    services = app.extensions["lipa"]
    return send_refund(refund.id, daraja=services.daraja, config=services.config,
                       result_url=result_url(services.public_url, services.callback_token),
                       timeout_url=timeout_url(services.public_url, services.callback_token))


def fresh(row):
    return type(row).get_by_id(row.id)


def sms_kinds(payment):
    rows = Notification.select().where(Notification.payment == payment).order_by(Notification.id)
    return [row.kind for row in rows]


def refund_over_http(live, payment, amount, method=None):
    """Request, send and wait for the simulator's Result to be applied by the live gateway."""
    with db.connection_context():
        refund = request_refund(payment, amount, "Customer asked", requested_by=STAFF, method=method)
        assert send(live.app, refund).status == "PROCESSING"

    def decided():
        with db.connection_context():
            return fresh(refund).status in ("COMPLETED", "FAILED")
    wait_for(decided)
    live.app.extensions["lipa"].tasks.drain()
    with db.connection_context():
        return fresh(refund), fresh(payment)


def test_full_refund_end_to_end(live, sim):
    with db.connection_context():
        payment = make_payment(amount=500)
    refund, payment = refund_over_http(live, payment, 500)
    with db.connection_context():
        assert (refund.status, refund.result_code, refund.conversation_id is not None) == ("COMPLETED", "0", True)
        assert refund.transaction_id and refund.transaction_id != payment.mpesa_receipt
        assert (payment.status, payment.refunded_amount) == ("REFUNDED", 500)
        assert sms_kinds(payment) == ["refund_initiated", "refund_processing", "refund_completed"]
        assert all("KES 500" in n.body for n in Notification.select().where(Notification.payment == payment))
        steps = [e.reason.split(":")[0] for e in PaymentEvent.select().where(
            PaymentEvent.payment == payment, PaymentEvent.kind == "refund").order_by(PaymentEvent.id)]
        assert steps == [f"refund {refund.id} INITIATED"] * 2 + [f"refund {refund.id} PROCESSING",
                                                                 f"refund {refund.id} COMPLETED"]
        transitions = [e.to_status for e in payment.events.where(PaymentEvent.kind == "transition")]
        assert transitions == ["REFUND_PENDING", "REFUNDED"]
        assert AuditLog.get(AuditLog.action == "refund_requested").actor == STAFF


def test_partial_refunds_up_to_the_total(live, sim):
    with db.connection_context():
        payment = make_payment(amount=1000)
    first, payment = refund_over_http(live, payment, 300)
    assert (first.status, payment.status, payment.refunded_amount) == ("COMPLETED", "COMPLETED", 300)
    second, payment = refund_over_http(live, payment, 700)
    assert (second.status, payment.status, payment.refunded_amount) == ("COMPLETED", "REFUNDED", 1000)
    with db.connection_context():
        kinds = sms_kinds(payment)
        assert kinds == ["refund_initiated", "refund_processing", "refund_completed"] * 2
        bodies = [n.body for n in Notification.select().where(Notification.kind == "refund_completed")]
        assert "KES 300" in bodies[0] and "KES 700" in bodies[1]
        with pytest.raises(NotAllowed):
            request_refund(payment, 1, "again", requested_by=STAFF)


def test_b2c_refund_end_to_end(live, sim):
    with db.connection_context():
        payment = make_payment(amount=400)
    refund, payment = refund_over_http(live, payment, 400, method="b2c")
    assert (refund.method, refund.status, payment.status) == ("b2c", "COMPLETED", "REFUNDED")
    sent = sim.daraja.async_log()
    assert [(r["kind"], r["OriginatorConversationID"], r["original"]) for r in sent] == [
        ("b2c", refund.originator_conversation_id, PHONE)]


def test_refused_by_result_outcome_end_to_end(live, sim):
    sim.daraja.set_reversal_outcome("NLJ7RT61SV", "no_role")
    with db.connection_context():
        payment = make_payment(amount=500)
    refund, payment = refund_over_http(live, payment, 500)
    assert (refund.status, refund.result_code, payment.status, payment.refunded_amount) == (
        "FAILED", "21", "COMPLETED", 0)
    with db.connection_context():
        assert sms_kinds(payment) == ["refund_initiated", "refund_processing", "refund_failed"]
        assert Alert.get(Alert.kind == "refund_failed").payment_id == payment.id


def test_over_refund_refused_with_the_refundable_amount(conn):
    payment = make_payment(amount=1000)
    Payment.update(refunded_amount=300).where(Payment.id == payment.id).execute()
    with pytest.raises(InvalidInput, match="At most KES 700 of payment LPREF0001"):
        request_refund(fresh(payment), 800, "too much", requested_by=STAFF)
    assert request_refund(fresh(payment), 700, "the rest", requested_by=STAFF).amount == 700


@pytest.mark.parametrize("status", ["PENDING", "PROCESSING", "FAILED", "CANCELLED", "EXPIRED", "REFUNDED"])
def test_only_paid_payments_can_be_refunded(conn, status):
    payment = make_payment(status=status)
    with pytest.raises(NotAllowed, match=f"is {status}"):
        request_refund(payment, 100, "no", requested_by=STAFF)
    assert Refund.select().count() == 0


def test_one_refund_in_flight_per_payment(conn):
    payment = make_payment()
    request_refund(payment, 100, "first", requested_by=STAFF)
    with pytest.raises(NotAllowed, match="already in progress"):
        request_refund(payment, 100, "second", requested_by=STAFF)


@pytest.mark.parametrize("amount, reason, method", [
    (0, "r", None), (-5, "r", None), ("abc", "r", None), (1.5, "r", None), (100, "  ", None),
    (100, "r", "cash"), (9, "r", "b2c"),
])
def test_invalid_requests(conn, amount, reason, method):
    with pytest.raises(InvalidInput):
        request_refund(make_payment(), amount, reason, requested_by=STAFF, method=method)


def test_concurrent_requests_cannot_exceed_the_amount_paid(app, conn):
    payment = make_payment(amount=1000)
    barrier, outcomes = threading.Barrier(6), []

    def attempt():
        with db.connection_context():
            barrier.wait()
            try:
                outcomes.append(request_refund(payment, 600, "race", requested_by=STAFF).amount)
            except (NotAllowed, InvalidInput) as exc:
                outcomes.append(exc.code)
    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes, key=str) == [600] + ["refund_in_progress"] * 5
    assert Refund.select().count() == 1 and fresh(payment).status == "REFUND_PENDING"


def test_daraja_refusal_fails_and_puts_the_payment_back(app, conn, sim):
    payment = make_payment(status="SETTLED")
    refund = request_refund(payment, 250, "refused", requested_by=STAFF)
    sim.daraja.set_fault("reversal", "internal")
    refund = send(app, refund)
    payment = fresh(payment)
    assert (refund.status, refund.result_code, payment.status, payment.refunded_amount) == (
        "FAILED", "500.003.1001", "SETTLED", 0)
    assert sms_kinds(payment) == ["refund_initiated", "refund_failed"]
    assert "KES 250" in Notification.get(Notification.kind == "refund_failed").body
    assert Alert.get(Alert.kind == "refund_failed").payment_id == payment.id


def test_ambiguous_answer_keeps_it_initiated_until_staff_resend(app, conn, sim):
    payment = make_payment()
    refund = request_refund(payment, 100, "unclear", requested_by=STAFF)
    sim.daraja.set_fault("reversal", "garbage")
    refund = send(app, refund)
    assert (refund.status, refund.conversation_id) == ("INITIATED", None)
    assert "check the M-Pesa portal" in refund.result_desc
    assert fresh(payment).status == "REFUND_PENDING" and Alert.get(Alert.kind == "refund_unknown")
    assert len(sim.daraja.async_log()) == 0  # the garbage fault answered before the fake recorded anything
    refund = send(app, refund)  # the explicit resend
    assert refund.status == "PROCESSING" and refund.conversation_id


def test_send_only_once(app, conn):
    refund = request_refund(make_payment(), 100, "once", requested_by=STAFF)
    assert send(app, refund).status == "PROCESSING"
    assert send(app, refund).status == "PROCESSING"
    Refund.update(status="INITIATED", result_code="SENDING", updated_at=utcnow()).where(
        Refund.id == refund.id).execute()
    assert send(app, refund).result_code == "SENDING"  # another sender holds the lease


def test_cancel_before_sending(app, conn):
    payment = make_payment()
    refund = request_refund(payment, 400, "mistake", requested_by=STAFF)
    refund = cancel_refund(refund, staff="staff:bob", reason="typed the wrong amount")
    payment = fresh(payment)
    assert (refund.status, payment.status, payment.refunded_amount) == ("CANCELLED", "COMPLETED", 0)
    assert sms_kinds(payment) == ["refund_initiated", "refund_cancelled"]
    assert AuditLog.get(AuditLog.action == "refund_cancelled").actor == "staff:bob"
    with pytest.raises(NotAllowed, match="CANCELLED"):
        cancel_refund(refund, staff="staff:bob", reason="again")
    assert send(app, refund).status == "CANCELLED"


def test_cannot_cancel_once_accepted(app, conn):
    refund = send(app, request_refund(make_payment(), 100, "sent", requested_by=STAFF))
    with pytest.raises(NotAllowed, match="PROCESSING"):
        cancel_refund(refund, staff=STAFF, reason="too late")


def self_signed(tmp_path, encoding="pem"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox.safaricom.test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    path = tmp_path / f"cert.{encoding}"
    path.write_bytes(cert.public_bytes(serialization.Encoding.DER if encoding == "der" else serialization.Encoding.PEM))
    return key, path


@pytest.mark.parametrize("encoding", ["pem", "der"])
def test_security_credential_round_trip(tmp_path, encoding):
    key, path = self_signed(tmp_path, encoding)
    credential = cred.security_credential("Safaricom999!*!", str(path))
    assert key.decrypt(base64.b64decode(credential), padding.PKCS1v15()) == b"Safaricom999!*!"


def test_initiator_for_each_profile(tmp_path):
    local = cred.initiator_for(load_config({"LIPA_PROFILE": "local"}, read_dotenv=False))
    assert local.name == "testapi" and len(base64.b64decode(local.credential)) == 256
    assert "credential" not in repr(local)
    sandbox = {"LIPA_PROFILE": "sandbox", "MPESA_CONSUMER_KEY": "k", "MPESA_CONSUMER_SECRET": "s",
               "MPESA_CALLBACK_TOKEN": "x" * 16, "LIPA_PUBLIC_URL": "https://lipa.test", "AT_API_KEY": "a",
               "LIPA_WEBHOOK_SECRET": "w" * 32, "AT_CALLBACK_TOKEN": "a" * 16, "LIPA_DATA_KEY": DATA_KEY,
               "LIPA_LOOKUP_KEY": LOOKUP_KEY}
    with pytest.raises(NotAllowed, match="MPESA_CERT_PATH"):
        cred.initiator_for(load_config(sandbox, read_dotenv=False))
    (tmp_path / "bad.cer").write_text("not a certificate")
    bad = {**sandbox, "MPESA_INITIATOR_NAME": "api", "MPESA_INITIATOR_PASSWORD": "p",
           "MPESA_CERT_PATH": str(tmp_path / "bad.cer")}
    with pytest.raises(NotAllowed, match="cannot be read"):
        cred.initiator_for(load_config(bad, read_dotenv=False))


def test_password_and_credential_never_logged(make_app, sim, tmp_path, caplog, monkeypatch):
    _, path = self_signed(tmp_path)
    password = "Pa55-never-logged-7731"
    app = make_app(config_overrides={
        "mpesa_base_url": sim.daraja_url, "at_base_url": sim.at_url, "mpesa_initiator_name": "lipa-api",
        "mpesa_initiator_password": password, "mpesa_cert_path": str(path)})
    seen = []
    real = cred.initiator_for
    monkeypatch.setattr("gateway.refunds.service.initiator_for", lambda config: seen.append(real(config)) or seen[-1])
    caplog.set_level(logging.DEBUG)
    sim.daraja.callback_delay = 60
    with db.connection_context():
        refund = send(app, request_refund(make_payment(), 100, "log check", requested_by=STAFF))
        sim.daraja.set_fault("reversal", "internal")
        send(app, request_refund(make_payment(receipt="RCPT2", ref="LPREF0002"), 100, "x", requested_by=STAFF))
        stored = " ".join(e.reason + str(e.payload) for e in PaymentEvent.select())
    assert refund.status == "PROCESSING" and len(seen) == 2
    text = caplog.text + repr(app.extensions["lipa"].config) + stored
    assert password not in text
    assert all(initiator.credential not in text for initiator in seen)
