"""The merchants' daily settlement summary (issue 16): the figures of one Nairobi day, sent from
LIPA_SETTLEMENT_HOUR on, once per merchant and day however many processes run the job; and the e-mail
settings: a bad LIPA_SMTP_URL stops start-up naming it, the password never shown."""
from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime
from email import message_from_bytes, policy
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.backoffice import auth
from gateway.devtools.phone_cli import FeaturePhone
from gateway.devtools.simulators.smtp_sink import create_mail_sim
from gateway.jobs import runner, settlement
from gateway.notify import mail
from shared.config import load_config
from shared.errors import ConfigError, InvalidInput
from shared.models import Merchant, Notification, Payment, PaymentRequest, Refund
from tests.factories import FakeClock

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2026, 5, 1)
AT_NINE = datetime(2026, 5, 2, 6, 0)  # 09:00 in Nairobi on May 2 (UTC+3), as naive UTC
BEFORE_EIGHT = datetime(2026, 5, 2, 4, 59)  # 07:59 in Nairobi


@pytest.fixture
def sink(smtp_sink):
    return smtp_sink


@pytest.fixture
def mail_config(config, sink):
    return config.with_overrides(smtp_url=sink.url, smtp_from="Lipa <settle@lipa.example>", settlement_hour=8)


def paid(ref, amount, completed_at, merchant=None, request=None, status="COMPLETED", **kw):
    return Payment.create(reference=ref, phone="254712345678", amount=amount, account="ACC1", channel="api",
                          status=status, completed_at=completed_at, merchant=merchant, request=request, **kw)


@pytest.fixture
def shop(database, config):
    """A merchant with a summary address and a day of its money, beside another merchant's."""
    auth.create_api_key("Greenfield Academy", email="Bursar@Greenfield.example")
    auth.create_api_key("Other Shop")
    me, other = Merchant.get(name="Greenfield Academy"), Merchant.get(name="Other Shop")
    bill = PaymentRequest.create(code="123456", amount=500, account="ADM1", merchant=me, status="PAID")
    refunded = paid("LPS1", 1000, datetime(2026, 5, 1, 9, 0), merchant=me, refunded_amount=200)
    paid("LPS2", 500, datetime(2026, 4, 30, 21, 30), request=bill)  # 00:30 EAT on May 1: that day
    paid("LPS3", 700, datetime(2026, 5, 1, 10, 0), merchant=other)  # another merchant's
    paid("LPS4", 900, datetime(2026, 5, 1, 22, 30), merchant=me)  # 01:30 EAT on May 2: the next day
    paid("LPS5", 300, datetime(2026, 4, 30, 20, 59), merchant=me)  # 23:59 EAT on April 30
    paid("LPS6", 800, None, merchant=me, status="FAILED")
    Refund.create(payment=refunded, amount=200, reason="double", requested_by="staff:a", status="COMPLETED",
                  originator_conversation_id="oc-1", updated_at=datetime(2026, 5, 1, 12, 0))
    Refund.create(payment=refunded, amount=50, reason="pending", requested_by="staff:a", status="INITIATED",
                  originator_conversation_id="oc-2", updated_at=datetime(2026, 5, 1, 12, 0))
    return me


def summaries():
    return list(Notification.select().where(Notification.kind == mail.SETTLEMENT_KIND))


def test_the_days_figures_are_the_merchants_own_nairobi_day(shop):
    assert settlement.figures(shop.id, DAY) == {"collected": {"count": 2, "amount": 1500},
                                                "refunds": {"count": 1, "amount": 200}, "net": 1300}
    other = Merchant.get(name="Other Shop")
    assert settlement.figures(other.id, DAY)["net"] == 700
    assert settlement.figures(shop.id, date(2026, 5, 2))["collected"] == {"count": 1, "amount": 900}


def test_nothing_before_the_hour_then_one_summary_a_day(shop, mail_config, sink):
    assert settlement.send_summaries(config=mail_config, now=BEFORE_EIGHT) == {"queued": 0}
    assert summaries() == []
    assert settlement.send_summaries(config=mail_config, now=AT_NINE) == {"day": "2026-05-01", "queued": 1}
    assert settlement.send_summaries(config=mail_config, now=datetime(2026, 5, 2, 18, 0))["queued"] == 0
    (row,) = summaries()
    assert row.recipient == "Bursar@greenfield.example" and row.dedupe_key == "email:settlement:%d:2026-05-01" % shop.id
    assert settlement.send_summaries(config=mail_config, now=datetime(2026, 5, 3, 6, 0))["queued"] == 1
    assert [r.dedupe_key[-10:] for r in summaries()] == ["2026-05-01", "2026-05-02"]


def test_several_processes_running_the_job_send_one_summary(shop, mail_config, sink, monkeypatch):
    monkeypatch.setattr(settlement, "utcnow", lambda: AT_NINE)
    ctx = SimpleNamespace(config=mail_config)
    for worker in ("host-a:1", "host-b:2", "host-a:1"):
        run = runner.run_job("settlement-summary", ctx, worker=worker)
        assert run is not None and run.outcome == "OK", run and run.error
    assert len(summaries()) == 1
    from gateway.notify.dispatcher import Dispatcher
    from gateway.notify.mail import MailOut
    from gateway.providers.smtp import EmailSender

    Dispatcher(sms=None, webhooks=None, email=MailOut(EmailSender(url=sink.url, sender=mail_config.smtp_from),
                                                      mail_config), clock=FakeClock()).dispatch_once()
    (kept,) = sink.sink.messages(to="bursar@greenfield.example")
    message = message_from_bytes(kept["raw"], policy=policy.default)
    assert message["Subject"] == "Lipa settlement 2026-05-01: net KES 1,300"
    text = message.get_content()
    assert "Payments collected: 2, KES 1,500" in text and "Refunds:            1, KES 200" in text
    assert "Greenfield Academy" in text and list(message.iter_attachments()) == []


def test_without_smtp_the_job_does_nothing(shop, config):
    assert settlement.send_summaries(config=config, now=AT_NINE) == {"skipped": "no LIPA_SMTP_URL"}
    assert summaries() == []


def test_create_api_key_email_is_checked_and_sealed(database, config):
    with pytest.raises(InvalidInput):
        auth.create_api_key("Shop", email="not-an-address")
    assert Merchant.select().count() == 0
    auth.create_api_key("Shop", email="ops@shop.example")
    auth.create_api_key("Shop")  # a second key keeps the address
    assert Merchant.get(name="Shop").email == "ops@shop.example"
    raw = database.execute_sql("SELECT email FROM merchant").fetchone()[0]
    assert "ops@shop.example" not in raw


@pytest.mark.parametrize("url, says", [
    ("http://mail.example.com:25", "must start with smtp:// or smtps://"),
    ("smtp://", "must name a host"),
    ("smtp://user:hunter2secret@mail.example.com:99999", "is not a valid URL"),
    ("smtps://user:hunter2secret@mail.example.com:465/inbox", "must be only"),
])
def test_a_bad_smtp_url_names_the_variable_and_never_the_password(url, says):
    with pytest.raises(ConfigError) as caught:
        load_config({"LIPA_SMTP_URL": url, "LIPA_SMTP_FROM": "a@b.example"}, read_dotenv=False)
    assert caught.value.variable == "LIPA_SMTP_URL" and says in str(caught.value)
    assert "hunter2secret" not in str(caught.value)


def test_smtp_settings_are_read_and_the_password_hidden():
    config = load_config({"LIPA_SMTP_URL": "smtps://relay:hunter2secret@mail.example.com",
                          "LIPA_SMTP_FROM": "Lipa <r@lipa.example>", "LIPA_SETTLEMENT_HOUR": "18"},
                         read_dotenv=False)
    assert (config.smtp_url, config.smtp_password, config.settlement_hour) == (
        "smtps://relay:hunter2secret@mail.example.com", "hunter2secret", 18)
    assert "hunter2secret" not in repr(config)
    from shared.logsafe import hide_config, mask_log

    hide_config(config)
    assert "hunter2secret" not in mask_log(f"connecting to {config.smtp_url}")
    for env, variable in (({"LIPA_SMTP_URL": "smtp://mail.example.com:25"}, "LIPA_SMTP_FROM"),
                          ({"LIPA_SMTP_URL": "smtp://h:25", "LIPA_SMTP_FROM": "nobody"}, "LIPA_SMTP_FROM"),
                          ({"LIPA_SETTLEMENT_HOUR": "24"}, "LIPA_SETTLEMENT_HOUR")):
        with pytest.raises(ConfigError) as caught:
            load_config(env, read_dotenv=False)
        assert caught.value.variable == variable


@pytest.mark.server  # a child process
def test_a_bad_smtp_url_stops_start_up_with_exit_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LIPA_SMTP_FROM": "a@b.example",
           "LIPA_SMTP_URL": "smtp://user:hunter2secret@mail.example.com:notaport"}
    proc = subprocess.run([sys.executable, str(ROOT / "run_gateway.py"), "migrate"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "LIPA_SMTP_URL" in proc.stderr.strip().splitlines()[-1] and "hunter2secret" not in proc.stderr


def test_the_phone_reads_the_sinks_mailbox(sink):
    import smtplib
    from email.message import EmailMessage

    from tests.conftest import LiveServer

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@lipa.example", "jane@example.com", "Receipt LP1"
    message.set_content("Thank you.")
    message.add_attachment(b"%PDF-1.4 x", maintype="application", subtype="pdf", filename="receipt-LP1.pdf")
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        client.send_message(message)
    mailbox = LiveServer(create_mail_sim(sink.sink))
    try:
        out = []
        answers = iter(["inbox --email", "inbox --email", "inbox --email other@example.com", "quit"])
        phone = FeaturePhone("0712345678", gateway_url="http://127.0.0.1:9", at_sim_url=None,
                             mail_url=mailbox.url, ask=lambda _prompt: next(answers), say=out.append)
        assert phone.run() == 0
    finally:
        mailbox.stop()
    first = out[1]
    assert "To jane@example.com: Receipt LP1" in first and "receipt-LP1.pdf (10 bytes)" in first
    assert "Thank you." in first and out[2:4] == ["No new e-mail.", "No new e-mail."]
