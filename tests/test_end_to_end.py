"""The paid path over real HTTP: USSD hop by hop, STK push to the simulator, its callback, COMPLETED."""
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from shared.db import db
from shared.models import InboxMessage, Payment, PaymentEvent
from tests.conftest import PG_URL
from tests.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
PHONE = "+254712345678"


def dial(base_url, session, text, phone=PHONE):
    response = requests.post(f"{base_url}/ussd", data={
        "sessionId": session, "serviceCode": "*384*123#", "phoneNumber": phone,
        "networkCode": "63902", "text": text}, timeout=5)
    assert response.status_code == 200
    return response.text


def payment_status():
    with db.connection_context():
        payment = Payment.select().order_by(Payment.id.desc()).first()
        return payment.status if payment else None


@pytest.mark.server
def test_ussd_to_completed_over_http(live, sim):
    for text in ["", "1", "1*12345", "1*12345*500"]:
        assert dial(live.url, "s-1", text).startswith("CON")
    assert dial(live.url, "s-1", "1*12345*500*1").startswith("END")
    wait_for(lambda: payment_status() == "COMPLETED")
    with db.connection_context():
        payment = Payment.get()
        steps = [(e.from_status, e.to_status) for e in payment.events.where(PaymentEvent.kind == "transition")
                 .order_by(PaymentEvent.id)]
        assert steps == [("PENDING", "PROCESSING"), ("PROCESSING", "COMPLETED")]
        assert (payment.amount, payment.account, payment.phone) == (500, "12345", "254712345678")
        assert payment.mpesa_receipt
    assert "Paid" in dial(live.url, "s-2", "2") or "imelipwa" in dial(live.url, "s-3", "2").lower()


@pytest.mark.server
@pytest.mark.parametrize("amount,status", [(51, "FAILED"), (53, "CANCELLED"), (56, "COMPLETED")])
def test_simulated_outcomes(live, sim, amount, status):
    dial(live.url, f"s-{amount}", f"1*ACC9*{amount}*1")
    wait_for(lambda: payment_status() == status)
    if amount == 56:  # the duplicate callback arrives and is absorbed
        wait_for(lambda: len(sim.daraja.callbacks_sent()) >= 2)
        live.app.extensions["lipa"].tasks.drain()
        with db.connection_context():
            assert PaymentEvent.select().where(PaymentEvent.to_status == "COMPLETED").count() == 1
            assert sorted(r.status for r in InboxMessage.select()) == ["APPLIED", "DUPLICATE"]


@pytest.mark.server
@pytest.mark.skipif(bool(PG_URL), reason="the quick start uses the embedded SQLite default")
def test_quick_start_command(tmp_path):
    """`python run_gateway.py` on a fresh directory: a real server a new user can drive with curl."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIPA_", "MPESA_", "AT_", "DATABASE_URL"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_gateway.py"), "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(base), timeout=30)
        assert dial(base, "qs", "1*12345*500*1", phone="+254711000111").startswith("END")
        wait_for(lambda: _status_in_db(tmp_path / "lipa.db") == "COMPLETED", timeout=20)
        assert "KES 500" in dial(base, "qs2", "2", phone="+254711000111")
        inbox = ""
        for _ in range(50):  # the receipt SMS goes out right after the callback; give it a moment
            phone = subprocess.run([sys.executable, str(ROOT / "run_gateway.py"), "phone", "0711000111",
                                    "--gateway-url", base], cwd=tmp_path, env=env, input="inbox\nquit\n",
                                   capture_output=True, text=True, timeout=30)
            inbox += phone.stdout
            if "Lipa receipt" in inbox:
                break
        assert "Paid KES 500 to 12345" in inbox, inbox
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "254711000111" not in output  # phone numbers are masked in the log


def _healthy(base):
    try:
        return requests.get(f"{base}/healthz", timeout=1).json() == {"status": "ok", "database": "ok"}
    except requests.RequestException:
        return False


def _status_in_db(path):
    if not path.exists():
        return None
    with sqlite3.connect(path) as con:
        row = con.execute("SELECT status FROM payment ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row else None


@pytest.mark.server
def test_receipt_sms_reaches_africastalking_and_is_delivered(live, sim):
    """USSD pay -> callback -> receipt SMS through the real SDK -> delivery report -> DELIVERED."""
    from shared.models import Notification

    services = live.app.extensions["lipa"]
    sim.at.delivery_url = f"{live.url}/sms/delivery"
    sim.at.delivery_delay = 0.05
    services.dispatcher.start()
    try:
        dial(live.url, "sms-1", "1*SHOP7*250*1")
        [message] = wait_for(lambda: sim.at.messages_for("254712345678"))
        assert "Paid KES 250 to SHOP7" in message["message"] and message["parts"] == 1
        requests.post(f"{live.url}/sms/inbound", data={
            "from": PHONE, "to": "22384", "text": "hali", "id": "ATXid_in_1", "date": "2026-11-23 10:00:00",
            "networkCode": "63902"}, timeout=5).raise_for_status()
        wait_for(lambda: len(sim.at.messages_for("254712345678")) == 2)
        reply = sim.at.messages_for("254712345678")[1]["message"]
        assert reply.startswith("Malipo LP") and "Imelipwa" in reply and "KES 250 kwa akaunti SHOP7" in reply

        def delivered():
            with db.connection_context():
                return Notification.select().where(Notification.status == "DELIVERED").count() == 2
        wait_for(delivered)
    finally:
        services.dispatcher.stop()
