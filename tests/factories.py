"""Builders the tests share: payments, provider payloads and posts, seeded data for the desktop tests.

One module, so a test file never imports another test file for its helpers."""
from __future__ import annotations

import json
from datetime import timedelta

from gateway.backoffice import auth
from shared.db import db
from shared.models import Payment, PaymentEvent
from shared.models import Payment as PaymentRow
from shared.states import ACTIVE
from shared.timeutil import utcnow
from tests.conftest import CALLBACK_TOKEN, fixture_json


class FakeClock:
    """Naive-UTC time the test moves by hand, so backoff and leases need no sleeping."""

    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# --- STK callbacks ---------------------------------------------------------------------------------

URL = f"/mpesa/stk/callback/{CALLBACK_TOKEN}"


CHECKOUT = "ws_CO_191220191020363925"


PHONE = "254708374149"


def paid_body(amount=500.0, receipt="NLJ7RT61SV", phone=int(PHONE), checkout=CHECKOUT):
    body = fixture_json("stk_callback_paid.json")
    cb = body["Body"]["stkCallback"]
    cb["CheckoutRequestID"] = checkout
    values = {"Amount": amount, "MpesaReceiptNumber": receipt, "PhoneNumber": phone}
    for item in cb["CallbackMetadata"]["Item"]:
        if item["Name"] in values:
            item["Value"] = values[item["Name"]]
    return body


def failed_body(code, desc="failed", checkout=CHECKOUT):
    body = fixture_json("stk_callback_cancelled.json")
    body["Body"]["stkCallback"].update(CheckoutRequestID=checkout, ResultCode=code, ResultDesc=desc)
    return body


def make_payment(status="PROCESSING", checkout=CHECKOUT, amount=500, ref="LPTEST001", phone=PHONE, **kw):
    values = {"account": "ACC42", "channel": "ussd", **kw}
    return Payment.create(reference=ref, phone=phone, amount=amount, status=status, checkout_request_id=checkout,
                          active_phone=phone if status in {s.value for s in ACTIVE} else None, **values)


def post(client, app, body, url=URL):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    response = client.post(url, data=data, content_type="application/json")
    app.extensions["lipa"].tasks.drain()
    return response


def reload(payment):
    return Payment.get_by_id(payment.id)


# --- C2B ---------------------------------------------------------------------------------------------

VALIDATION = f"/mpesa/c2b/validation/{CALLBACK_TOKEN}"


CONFIRMATION = f"/mpesa/c2b/confirmation/{CALLBACK_TOKEN}"


def c2b_body(**changes) -> dict:
    body = fixture_json("c2b_confirmation.json")
    body.update(changes)
    return body


def confirm(app, body, **kwargs):
    return post(app.test_client(), app, body, url=CONFIRMATION, **kwargs)


# --- the desktop tests' seed data -------------------------------------------------------------------

SEED_PHONE = "254712345678"  # the desktop tests' customer
PASSWORDS = {role: f"{role}-password" for role in auth.ROLES}


def seed(n=1, *, start=None, **kw) -> list[int]:
    """n payments a minute apart, oldest first, written straight to the database; their ids."""
    start = start or utcnow() - timedelta(days=1)
    ids = []
    with db.connection_context():
        for i in range(n):
            values = dict(reference=f"LPT{PaymentRow.select().count() + 1:06d}", phone=SEED_PHONE, amount=100 + i,
                          account="ACC1", channel="ussd", status="COMPLETED", created_at=start + timedelta(minutes=i))
            values.update(kw)
            if values["status"] in ("PENDING", "PROCESSING"):
                values.setdefault("active_phone", values["phone"])
            ids.append(PaymentRow.create(**values).id)
    return ids


def add_events(payment_id: int) -> None:
    """A small event log with payloads, as the state machine writes it."""
    with db.connection_context():
        row = PaymentRow.get_by_id(payment_id)
        t0 = row.created_at
        for second, kind, frm, to, payload in ((0, "created", "PENDING", "PENDING", None),
                                                (1, "transition", "PENDING", "PROCESSING", {"ResponseCode": "0"}),
                                                (9, "transition", "PROCESSING", row.status, {"ResultCode": 0})):
            PaymentEvent.create(payment=row, kind=kind, from_status=frm, to_status=to, actor="test", payload=payload,
                                created_at=t0 + timedelta(seconds=second))


def add_staff() -> dict[str, str]:
    """One staff member per role, written straight to the database; their passwords by role."""
    with db.connection_context():
        for role in auth.ROLES:
            auth.create_staff(role, PASSWORDS[role], role)
    return PASSWORDS


def tls_files(tmp_path, host: str):
    """A self-signed certificate for ``host`` (its own CA), and its key."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{host}.pem", tmp_path / f"{host}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
