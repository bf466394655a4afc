"""E-mail in the quick start (issue 16): `python run_gateway.py` in the local profile, two worker processes,
no credentials, no internet. A merchant made with `create-api-key --email` opens a request carrying the
payer's e-mail; the payer pays it by USSD; the built-in SMTP sink receives the receipt once, with its PDF,
and the phone CLI reads it with `inbox --email`; the settlement summary arrives once although both
workers' schedulers run its job every second."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import PG_URL
from tests.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
PAYER = "wanjiku@example.co.ke"
pytestmark = [pytest.mark.server,
              pytest.mark.skipif(bool(PG_URL), reason="the quick start uses the embedded SQLite default")]


def _run(args, cwd, env, **kw):
    return subprocess.run([sys.executable, str(ROOT / "run_gateway.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, **kw)


def _healthy(base):
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _mailbox(tmp_path, env, base) -> str:
    phone = _run(["phone", "0711000222", "--gateway-url", base], tmp_path, env, input="inbox --email\nquit\n")
    return phone.stdout


def _summary_runs(tmp_path) -> int:
    """Finished runs of the settlement-summary job, by either worker."""
    with sqlite3.connect(tmp_path / "lipa.db") as con:
        return con.execute("SELECT COUNT(*) FROM job_run WHERE job = 'settlement-summary' AND outcome = 'OK'"
                           ).fetchone()[0]


def test_receipt_and_settlement_mails_in_the_quick_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIPA_", "MPESA_", "AT_", "DATABASE_URL"))}
    env.update(PYTHONPATH=str(ROOT), LIPA_SETTLEMENT_HOUR="0", LIPA_JOB_SETTLEMENT_SUMMARY_S="1")
    made = _run(["create-api-key", "--name", "Greenfield", "--email", "bursar@greenfield.example"], tmp_path, env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.split("api_key: ")[1].split()[0]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_gateway.py"), "--port", str(port), "--workers", "2"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _healthy(base), timeout=40)
        bill = requests.post(f"{base}/api/v1/payment-requests", headers={"Authorization": f"Bearer {key}"},
                             json={"amount": 750, "account": "ADM7", "email": PAYER}, timeout=10).json()
        answer = requests.post(f"{base}/ussd", timeout=10, data={
            "sessionId": "mail-1", "serviceCode": "*384*123#", "phoneNumber": "+254711000222",
            "networkCode": "63902", "text": f"1*{bill['code']}*1"}).text
        assert answer.startswith("END"), answer
        seen = wait_for(lambda: (lambda box: box if "Receipt LP" in box and "Lipa settlement" in box else "")(
            _mailbox(tmp_path, env, base)), timeout=40, interval=0.5)
        runs = _summary_runs(tmp_path)
        wait_for(lambda: _summary_runs(tmp_path) >= runs + 4, timeout=30, interval=0.2)  # it ran again: no repeat
        box = _mailbox(tmp_path, env, base)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"To {PAYER}: Receipt LP" in seen and "paid to Greenfield" in seen
    assert "attached: receipt-LP" in seen and ".pdf (" in seen
    assert box.count("Receipt LP") == 1 and box.count("Lipa settlement") == 1, box
    assert "To bursar@greenfield.example: Lipa settlement" in box
    assert PAYER not in output and "bursar@greenfield.example" not in output  # addresses masked in the log
