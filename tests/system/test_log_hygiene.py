"""No secret, token, PIN or full phone number in the log of a whole realistic run (issue 7).

A real `python run_gateway.py` (gunicorn, its own logging set-up, the built-in simulators calling back
over HTTP) runs a day in miniature: a USSD payment to completion (STK push, callback, receipt SMS,
delivery report), a bill paid with a merchant webhook signed with the webhook secret, SMS commands, API
logins with staff passwords, an API key, a refund with the initiator credential, and refused calls
(wrong callback tokens, bad bearer tokens, a wrong password, a viewer on an admin route, an oversized
body, a malformed callback). Everything the process and the CLI wrote is then searched for every secret
and every phone number of the run in every format.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from shared.config import SANDBOX_PASSKEY, SANDBOX_SHORTCODE

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "callback token": "cbtok-7Hq2LmZ9xR4vW1sK8pN3",
    "consumer key": "ck-9Fh3JqT6mV2xL8rD5wB1",
    "consumer secret": "cs-4Gk8NpQ2tY7zR3mH6vX9",
    "AT api key": "atk-2Wd6FjL9qS4xV8nB3mZ7",
    "initiator password": "initpw-Safe#Pass-8321",
    "webhook secret": "whsec-5Tn7KpR2yU9wQ4xM1vC8",
    "admin password": "admin-Pa55word-7731",
    "viewer password": "viewer-Pa55word-2218",
    "wrong password tried": "guess-Pa55word-9054",
    "passkey": SANDBOX_PASSKEY,
}
PIN = "4826"
PHONES = {"ussd": "254712000111", "sms": "254722000222", "api": "254700000333", "bill": "254711000444"}
pytestmark = pytest.mark.server


class _Webhooks(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _env(db_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPESA_", "AT_", "LIPA_"))}
    env.update({
        "PYTHONPATH": str(ROOT), "LIPA_PROFILE": "local", "DATABASE_URL": db_url,
        "MPESA_CALLBACK_TOKEN": SECRETS["callback token"], "MPESA_CONSUMER_KEY": SECRETS["consumer key"],
        "MPESA_CONSUMER_SECRET": SECRETS["consumer secret"], "AT_API_KEY": SECRETS["AT api key"],
        "MPESA_INITIATOR_NAME": "testapi", "MPESA_INITIATOR_PASSWORD": SECRETS["initiator password"],
        "LIPA_WEBHOOK_SECRET": SECRETS["webhook secret"], "LIPA_API_RATE_LIMITS": "0",
    })
    return env


def _cli(env, tmp_path, *args) -> tuple[str, str]:
    done = subprocess.run([sys.executable, str(ROOT / "run_gateway.py"), *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout, done.stderr


class Run:
    """The gateway subprocess and a requests session to it."""

    def __init__(self, env, tmp_path):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "gateway.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run_gateway.py"), "--port", str(self.port), "--no-scheduler"],
            env=env, cwd=tmp_path, stdout=self._log, stderr=subprocess.STDOUT)
        self.http = requests.Session()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                if self.http.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gateway did not start: " + self.log_path.read_text()[-2000:])

    def post(self, path, **kwargs):
        return self.http.post(self.url + path, timeout=15, **kwargs)

    def get(self, path, **kwargs):
        return self.http.get(self.url + path, timeout=15, **kwargs)

    def ussd(self, session, phone, text):
        return self.post("/ussd", data={"sessionId": session, "serviceCode": "*384*7#", "phoneNumber": phone,
                                        "networkCode": "63902", "text": text}).text

    def sms(self, phone, text):
        return self.post("/sms/inbound", data={"from": phone, "to": "22384", "text": text, "id": _at_id(),
                                               "date": "2026-11-23 10:15:02", "linkId": "", "networkCode": "63902"})

    def wait_for(self, what, check, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()
        self.http.close()
        return self.log_path.read_text()


def _at_id() -> str:
    return "ATXid_" + uuid.uuid4().hex


def _payment(run, headers, phone):
    found = run.get("/api/v1/payments", params={"phone": phone}, headers=headers).json()["items"]
    return found[0] if found else None


def _completed(payment):
    return payment if payment and payment["status"] == "COMPLETED" else None


def _day(run: Run, env, tmp_path, hook_url: str) -> dict:
    """The whole flow; returns the bearer tokens and keys it used (to be searched for too)."""
    out, _ = _cli(env, tmp_path, "create-staff", "--username", "ops", "--password", SECRETS["admin password"],
                  "--role", "admin")
    _cli(env, tmp_path, "create-staff", "--username", "eve", "--password", SECRETS["viewer password"],
         "--role", "viewer")
    api_key = _cli(env, tmp_path, "create-api-key", "--name", "Clinic")[0].splitlines()[0].removeprefix("api_key: ")
    admin = {"Authorization": "Bearer " + run.post("/api/v1/auth/login", json={
        "username": "ops", "password": SECRETS["admin password"]}).json()["token"]}
    viewer = {"Authorization": "Bearer " + run.post("/api/v1/auth/login", json={
        "username": "eve", "password": SECRETS["viewer password"]}).json()["token"]}
    merchant = {"Authorization": f"Bearer {api_key}"}

    # USSD: pay 500 to ACC1 from +2547…; a mistaken PIN typed at the confirm screen of another session
    phone = "+" + PHONES["ussd"]
    for text in ("", "1", "1*ACC1", "1*ACC1*500"):
        assert run.ussd("s-1", phone, text).startswith("CON")
    assert run.ussd("s-1", phone, "1*ACC1*500*1").startswith("END")
    run.post("/ussd/events", data={"sessionId": "s-1", "phoneNumber": phone, "status": "Success", "hopsCount": "5"})
    paid = run.wait_for("the USSD payment", lambda: _completed(_payment(run, admin, PHONES["ussd"])))
    run.ussd("s-2", "0" + PHONES["ussd"][3:], "")
    run.ussd("s-2", "0" + PHONES["ussd"][3:], f"1*ACC9*100*{PIN}")

    # A bill with a merchant webhook, paid by USSD with its code
    bill = run.post("/api/v1/payment-requests", headers=merchant, json={
        "amount": 250, "account": "BILL7", "description": "Clinic visit", "callback_url": hook_url}).json()
    bill_phone = PHONES["bill"][3:]  # 7XXXXXXXX, as some operators send it
    for text in ("", "1", f"1*{bill['code']}"):
        run.ussd("s-3", bill_phone, text)
    run.ussd("s-3", bill_phone, f"1*{bill['code']}*1")
    run.wait_for("the signed webhook", lambda: _Webhooks.received)

    # SMS commands, a delivery report, an API payment with the phone in a query string
    for text in ("HELP", "STATUS", "PAY ACC2 200", "STOP", "START"):
        assert run.sms("+" + PHONES["sms"], text).status_code == 200
    run.post("/sms/delivery", data={"id": _at_id(), "status": "Failed", "phoneNumber": "+" + PHONES["sms"],
                                    "networkCode": "63902", "failureReason": "UserInBlackList", "retryCount": "0"})
    created = run.post("/api/v1/payments", headers=merchant, json={
        "phone": "0" + PHONES["api"][3:], "amount": 75, "account": "ACC3"})
    assert created.status_code == 201, created.text
    run.get("/api/v1/payments", params={"phone": "+" + PHONES["api"]}, headers=admin)
    run.get(f"/api/v1/payments/{paid['id']}", headers=admin)

    # A refund: the initiator password goes out encrypted as the SecurityCredential
    refund = run.post(f"/api/v1/payments/{paid['id']}/refund", headers=admin, json={"amount": 500, "reason": "test"})
    assert refund.status_code == 201, refund.text
    run.wait_for("the refund", lambda: run.get(f"/api/v1/payments/{paid['id']}", headers=admin).json()[
        "status"] == "REFUNDED")

    # Refused: wrong callback tokens, bad tokens, wrong password, a viewer refunding, an oversized body
    stk = {"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": 0, "CallbackMetadata": {
        "Item": [{"Name": "PhoneNumber", "Value": int(PHONES["ussd"])}]}}}}
    for path in ("/mpesa/stk/callback/", "/mpesa/c2b/confirmation/", "/mpesa/result/"):
        assert run.post(path + SECRETS["callback token"][:-1] + "X", json=stk).status_code == 404
    assert run.post("/mpesa/stk/callback/" + SECRETS["callback token"], data=b'{"Body": ' + PHONES["ussd"].encode(),
                    headers={"Content-Type": "application/json"}).status_code == 400
    assert run.get("/api/v1/payments", headers={"Authorization": "Bearer lps_" + "Q" * 40}).status_code == 401
    assert run.get("/api/v1/payments", headers={"Authorization": f"Bearer {api_key[:-2]}zz"}).status_code == 401
    assert run.post("/api/v1/auth/login", json={"username": "ops", "password": SECRETS["wrong password tried"]}
                    ).status_code == 401
    assert run.post(f"/api/v1/payments/{paid['id']}/refund", headers=viewer, json={"amount": 1, "reason": "x"}
                    ).status_code == 403
    assert run.post("/sms/inbound", data={"from": "+" + PHONES["sms"], "text": "x" * 70_000}).status_code == 413
    for path, kind in (("/sms/inbound", "application/x-www-form-urlencoded"), ("/ussd", "text/plain"),
                       ("/mpesa/stk/callback/" + SECRETS["callback token"], "application/json")):
        streamed = run.post(path, data=_streamed_body(), headers={"Content-Type": kind})  # chunked, no length
        assert streamed.status_code == (200 if path == "/ussd" else 413), (path, streamed.text[:200])
        assert not path == "/ussd" or streamed.text.startswith("END ")
    return {"admin token": admin["Authorization"][7:], "viewer token": viewer["Authorization"][7:],
            "api key": api_key, "setup output": out}


def _streamed_body():
    """67 kB in chunks (Transfer-Encoding: chunked): over the 64 kB limit, with the caller's number in it."""
    for _ in range(67):
        yield f"from=%2B{PHONES['sms']}&text=".encode() + b"7" * 990


def _phone_forms(phone: str) -> list[str]:
    """Every way the number can be written; the bare 9 digits are inside all of them."""
    return [phone, "+" + phone, "0" + phone[3:], phone[3:], f"{phone[3:6]} {phone[6:9]} {phone[9:]}"]


def test_no_secret_token_pin_or_phone_in_the_log(tmp_path, db_url):
    env = _env(db_url)  # a fresh SQLite file, or the emptied PostgreSQL test database
    hooks = ThreadingHTTPServer(("127.0.0.1", 0), _Webhooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    run = Run(env, tmp_path)
    try:
        tokens = _day(run, env, tmp_path, f"http://127.0.0.1:{hooks.server_port}/hook")
    finally:
        log = run.stop()
        hooks.shutdown()
        hooks.server_close()
    cli_log = "".join(_cli(env, tmp_path, "migrate"))
    text = log + cli_log
    assert "payment" in text.lower() and "refund" in text.lower(), "the run logged too little to prove anything"
    headers, body = _Webhooks.received[0]
    assert "Lipa-Signature" in headers and json.loads(body)  # the webhook went out, signed
    stk_password = base64.b64encode(f"{SANDBOX_SHORTCODE}{SANDBOX_PASSKEY}".encode()[:69]).decode()
    forbidden = {**SECRETS, "STK password": stk_password, "PIN as typed": f"*{PIN}",
                 **{k: v for k, v in tokens.items() if k != "setup output"}}
    for name, phone in PHONES.items():
        forbidden.update({f"{name} phone as {form}": form for form in _phone_forms(phone)})
    leaks = {name: _around(text, value) for name, value in forbidden.items() if value in text}
    assert leaks == {}


def _around(text: str, value: str) -> str:
    at = text.index(value)
    return text[max(0, at - 120): at + len(value) + 40]


@pytest.mark.parametrize("text,hidden", [
    ("from 254712000111 via ussd", "254712000111"), ("to +254 712 000 111", "712 000 111"),
    ("msisdn=0712000111", "0712000111"), ("caller 712000111 refused", "712000111"),
    ("GET /api/v1/payments?phone=%2B254712000111&x=1", "254712000111"),
    ("POST /mpesa/stk/callback/cbtok-7Hq2LmZ9xR4vW1sK8pN3 HTTP/1.1", "cbtok-7Hq2LmZ9xR4vW1sK8pN3"),
    ("could not post to http://h/mpesa/result/sEcReT123?x", "sEcReT123"),
    ("Authorization: Bearer lps_abcdefghijklmnop", "lps_abcdefghijklmnop"), ("key lpk_abcdefghijklmnop", "abcdefghij"),
    ("Basic Y2s6Y3M=", "Y2s6Y3M="), ('{"Password": "MTc0Mzc5YmZi", "Timestamp": "1"}', "MTc0Mzc5YmZi"),
    ("SecurityCredential=AbC+dEf/123==&x", "AbC+dEf/123=="), ("initiator_password='p4ss-w0rd'", "p4ss-w0rd"),
])
def test_mask_log_hides_phones_and_credentials(text, hidden):
    from shared.logsafe import mask_log

    assert hidden not in mask_log(text)


def test_mask_log_keeps_what_is_not_secret():
    from shared.logsafe import mask_log

    line = "payment LP9P8AEDD PROCESSING -> COMPLETED: KES 250,000 at 20191219102115, ws_CO_191220191020363925"
    assert mask_log(line) == line
    assert mask_log("from 254712000111") == "from 254712***111"


def test_every_logger_and_traceback_is_masked_once_installed():
    """A library logger with its own handler (gunicorn's, urllib3's) and a traceback whose message echoes
    a phone (PostgreSQL's 'Key (active_phone)=(…) already exists') are masked like our own lines."""
    import io
    import logging

    from shared import logsafe

    previous = logging.getLogRecordFactory()
    logsafe.install_masking()
    logsafe.hide("registered-secret-value")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    foreign = logging.getLogger("some.library")
    foreign.addHandler(handler)
    foreign.propagate = False
    try:
        foreign.warning("Error handling request /mpesa/timeout/%s for %s", "tok-123456", "+254712000111")
        try:
            raise ValueError("Key (active_phone)=(254712000111) already exists; registered-secret-value")
        except ValueError:
            foreign.exception("insert failed")
    finally:
        logging.setLogRecordFactory(previous)  # the rest of the test session keeps pytest's records as they were
        foreign.removeHandler(handler)
        foreign.propagate = True
    out = stream.getvalue()
    assert "insert failed" in out and "ValueError" in out
    for leak in ("tok-123456", "712000111", "registered-secret-value"):
        assert leak not in out
