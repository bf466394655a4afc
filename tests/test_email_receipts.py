"""The receipt e-mail (issue 16): a request carrying ``email`` that becomes PAID sends the payer one mail with
the PDF receipt attached, through the outbox, to a real SMTP server (aiosmtpd) on 127.0.0.1; a server that
is down for a while delays it and never doubles it; the address is masked where people read it."""
from __future__ import annotations

import logging
import re
import zlib
from email import message_from_bytes, policy

import pytest

from gateway.devtools.simulators.smtp_sink import SmtpSink
from gateway.notify import mail
from gateway.notify.dispatcher import Dispatcher
from gateway.notify.mail import MailOut
from gateway.providers.africastalking import SmsSender
from gateway.providers.smtp import EmailPermanent, EmailRetryable, EmailSender
from gateway.providers.webhooks import WebhookSender
from shared.models import Notification, PaymentRequest
from tests.factories import FakeClock, make_payment, paid_body, post
from tests.helpers import free_port, staff_headers

PAYER = "jane.wanjiku@example.co.ke"
SENDER = "Lipa Receipts <receipts@lipa.example>"
URL = "/api/v1/payment-requests"


@pytest.fixture
def sink(smtp_sink):
    return smtp_sink


@pytest.fixture
def mail_app(sim, sink, make_app):
    """The gateway wired to the simulators and to the SMTP sink; its dispatcher is driven by the test."""
    return make_app(config_overrides={"mpesa_base_url": sim.daraja_url, "at_base_url": sim.at_url,
                                      "smtp_url": sink.url, "smtp_from": SENDER})


@pytest.fixture
def heads(mail_app, conn):
    return staff_headers(("viewer", "operator"), merchants={"shop": "Greenfield Academy"})


def dispatcher_for(app, url: str, clock) -> Dispatcher:
    """A dispatcher like the app's, on a clock the test moves; SMS to the AT simulator."""
    config = app.extensions["lipa"].config
    return Dispatcher(sms=SmsSender(username="sandbox", api_key="k", base_url=config.at_base_url, timeout=(1, 3)),
                      webhooks=WebhookSender(secret="s" * 32), email=MailOut(EmailSender(url=url, sender=SENDER,
                                                                                         timeout_s=3), config),
                      clock=clock, base_backoff_s=5, max_backoff_s=60)


def pay_request(client, app, heads, *, email=PAYER) -> dict:
    """A request with the payer's e-mail, paid by an STK callback."""
    made = client.post(URL, headers=heads["shop"], json={"amount": 500, "account": "ADM1042", "email": email,
                                                         "description": "Term 2"})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    make_payment(request=PaymentRequest.get_by_id(body["id"]), ref="LPMAIL0001")
    assert post(client, app, paid_body()).status_code == 200
    return body


def received(server) -> list:
    return [message_from_bytes(m["raw"], policy=policy.default) for m in server.sink.messages(to=PAYER)]


def check_receipt(message, reference="LPMAIL0001"):
    """One receipt mail: to the payer, from the sender, naming the payment, the PDF attached and readable."""
    assert message["To"] == PAYER and "receipts@lipa.example" in message["From"]
    assert reference in message["Subject"] and "Greenfield Academy" in message["Subject"]
    assert "NLJ7RT61SV" in message.get_body(preferencelist=("plain",)).get_content()
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"receipt-{reference}.pdf"
    pdf = attachment.get_payload(decode=True)
    assert pdf.startswith(b"%PDF")
    shown = b"".join(zlib.decompress(raw) for raw in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S))
    assert reference.encode() in shown and b"NLJ7RT61SV" in shown


def test_a_paid_request_mails_its_receipt_once_with_the_pdf(mail_app, heads, sink):
    client = mail_app.test_client()
    made = pay_request(client, mail_app, heads)
    assert PaymentRequest.get_by_id(made["id"]).status == "PAID"
    assert post(client, mail_app, paid_body()).status_code == 200  # Daraja repeats its callback
    dispatcher = dispatcher_for(mail_app, sink.url, FakeClock())
    for _ in range(3):
        dispatcher.dispatch_once()
    (message,) = received(sink)
    check_receipt(message)
    (row,) = Notification.select().where(Notification.channel == "email")
    assert (row.status, row.kind, row.dedupe_key) == ("SENT", mail.RECEIPT_KIND, mail.receipt_key(made["id"]))
    assert row.payment.reference == "LPMAIL0001" and row.request_id == made["id"]


def test_a_down_smtp_server_delays_the_receipt_and_never_doubles_it(mail_app, heads):
    port = free_port()
    url = f"smtp://127.0.0.1:{port}"
    client = mail_app.test_client()
    pay_request(client, mail_app, heads)
    clock = FakeClock()
    dispatcher = dispatcher_for(mail_app, url, clock)
    assert dispatcher.dispatch_once() >= 1  # nobody listens on the port: connection refused
    (row,) = Notification.select().where(Notification.channel == "email")
    assert row.status == "QUEUED" and row.attempts == 1 and "ConnectionRefused" in row.failure_reason
    assert PaymentRequest.get_by_id(row.request_id).status == "PAID"  # the payment never waits for the mail
    server = SmtpSink(port=port)
    server.sink.fail_next(1, 421)  # back, but still saying "later" once
    server.start()
    try:
        clock.advance(30)
        dispatcher.dispatch_once()
        row = Notification.get_by_id(row.id)
        assert row.status == "QUEUED" and row.attempts == 2 and "421" in row.failure_reason
        assert received(server) == []
        clock.advance(60)
        dispatcher.dispatch_once()
        clock.advance(600)
        dispatcher.dispatch_once()
        (message,) = received(server)
        check_receipt(message)
        assert Notification.get_by_id(row.id).status == "SENT" and Notification.get_by_id(row.id).attempts == 3
    finally:
        server.stop()


def test_the_app_sends_e_mail_in_its_own_lane(mail_app, heads, sink):
    """The app's own dispatcher, started: SMS and e-mail both leave, each on its own thread."""
    from tests.helpers import wait_for

    client = mail_app.test_client()
    pay_request(client, mail_app, heads)
    dispatcher = mail_app.extensions["lipa"].dispatcher
    dispatcher.start()
    try:
        wait_for(lambda: len(sink.sink.messages(to=PAYER)) == 1)
        names = {thread.name for thread in [dispatcher._thread, *dispatcher._other_threads]}
        assert "lipa-mail" in names and "lipa-dispatcher" in names
    finally:
        dispatcher.stop()
    assert len(received(sink)) == 1


def test_no_email_no_mail_and_no_smtp_no_mail(mail_app, make_app, heads, sink):
    client = mail_app.test_client()
    made = client.post(URL, headers=heads["shop"], json={"amount": 500, "account": "ADM1042"}).get_json()
    make_payment(request=PaymentRequest.get_by_id(made["id"]), ref="LPMAIL0002")
    post(client, mail_app, paid_body())
    assert Notification.select().where(Notification.channel == "email").count() == 0
    plain = make_app(config_overrides={"smtp_url": "", "smtp_from": ""})  # LIPA_SMTP_URL unset
    made = plain.test_client().post(URL, headers=heads["shop"],
                                    json={"amount": 500, "account": "ADM1042", "email": PAYER}).get_json()
    make_payment(request=PaymentRequest.get_by_id(made["id"]), ref="LPMAIL0003", checkout="ws_CO_other")
    post(plain.test_client(), plain, paid_body(checkout="ws_CO_other", receipt="NLJ7RT61SW"))
    assert PaymentRequest.get_by_id(made["id"]).status == "PAID"
    assert Notification.select().where(Notification.channel == "email").count() == 0


@pytest.mark.parametrize("bad", ["jane", "jane@", "@example.com", "jane@example", "a b@example.com",
                                 "jane..doe@example.com", 42, "x" * 250 + "@example.com"])
def test_a_bad_email_is_a_clear_400(mail_app, heads, bad):
    answer = mail_app.test_client().post(URL, headers=heads["shop"],
                                         json={"amount": 500, "account": "ADM1042", "email": bad})
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_email"
    assert PaymentRequest.select().count() == 0


def test_the_email_is_sealed_and_masked_for_viewers_and_in_logs(mail_app, heads, sink, caplog):
    from shared.db import db

    client = mail_app.test_client()
    made = client.post(URL, headers=heads["shop"], json={"amount": 500, "account": "ADM1042", "email": PAYER})
    assert made.get_json()["email"] == PAYER  # the merchant sent it
    rid = made.get_json()["id"]
    viewer = client.get(f"{URL}/{rid}", headers=heads["viewer"]).get_json()
    assert viewer["email"] == "j***@example.co.ke"
    stored = db.execute_sql("SELECT email FROM payment_request WHERE id = %s" % int(rid)).fetchone()[0]
    assert PAYER not in stored and "example" not in stored  # sealed at rest
    make_payment(request=PaymentRequest.get_by_id(rid), ref="LPMAIL0004")
    post(client, mail_app, paid_body())
    notes = client.get("/api/v1/notifications", headers=heads["viewer"]).get_json()["items"]
    assert [n["recipient"] for n in notes if n["channel"] == "email"] == ["j***@example.co.ke"]
    from shared.logsafe import install_masking

    factory = logging.getLogRecordFactory()
    install_masking()  # as configure_logging() does in every gateway process
    try:
        with caplog.at_level(logging.DEBUG):
            logging.getLogger("lipa.test").info("receipt for %s", PAYER)
            dispatcher_for(mail_app, sink.url, FakeClock()).dispatch_once()
    finally:
        logging.setLogRecordFactory(factory)
    assert len(received(sink)) == 1
    assert PAYER not in caplog.text and "j***@example.co.ke" in caplog.text


class _Refusing:
    """An SMTP connection whose server refuses the recipient with ``code``."""

    def __init__(self, code):
        self.code = code

    def __call__(self, host, port, timeout):
        import smtplib

        code = self.code

        class Connection(smtplib.SMTP):
            def __init__(self):
                super().__init__()

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def ehlo(self, name=""):
                return 250, b"ok"

            def has_extn(self, opt):
                return False

            def send_message(self, msg, *args, **kwargs):
                raise smtplib.SMTPRecipientsRefused({msg["To"]: (code, b"no")})

        return Connection()


@pytest.mark.parametrize("code, error", [(550, EmailPermanent), (450, EmailRetryable)])
def test_a_refused_recipient_is_permanent_only_for_5xx(code, error):
    from email.message import EmailMessage

    sender = EmailSender(url="smtp://127.0.0.1:25", sender=SENDER, smtp_factory=_Refusing(code))
    message = EmailMessage()
    message["To"] = PAYER
    message.set_content("x")
    with pytest.raises(error):
        sender.send(message)


class Silent:
    """A TCP server that accepts and never says a word: an SMTP server hung before its greeting."""

    def __init__(self):
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held, self.done = [], threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.done.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def stop(self):
        self.done.set()
        for conn in self.held:
            conn.close()
        self.sock.close()


def test_a_hung_smtp_server_never_delays_the_receipt_sms(mail_app, heads, sim):
    from tests.helpers import wait_for

    silent = Silent()
    config = mail_app.extensions["lipa"].config
    dispatcher = Dispatcher(sms=SmsSender(username="sandbox", api_key="k", base_url=config.at_base_url, timeout=(1, 3)),
                            webhooks=WebhookSender(secret="s" * 32), webhook_workers=1,
                            email=MailOut(EmailSender(url=f"smtp://127.0.0.1:{silent.port}", sender=SENDER,
                                                      timeout_s=3), config))  # the wait: kept short
    client = mail_app.test_client()
    pay_request(client, mail_app, heads)
    dispatcher.start()
    try:
        wait_for(lambda: silent.held)  # the mail lane is stuck waiting for a greeting ...
        wait_for(lambda: sim.at.messages_for("254708374149"))  # ... and the receipt SMS goes out meanwhile
        assert Notification.get(Notification.channel == "email").status == "SENDING"
    finally:
        dispatcher.stop(timeout=15)
        silent.stop()
    row = Notification.get(Notification.channel == "email")
    assert row.status == "QUEUED" and row.attempts == 1  # timed out: tried again later, not lost
