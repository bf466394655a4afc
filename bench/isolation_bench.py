"""Slow work apart from fast work (issue 15), against a real gateway process.

Run: python bench/isolation_bench.py [--seconds 20] [--polls 40] [--hooks 20] [--receipts 30]

A merchant endpoint answering one byte every 4 s holds every webhook queued to it, and 40 long-polls
(GET /api/v1/events?after=now&wait=25, one viewer token) ask for server threads all along; meanwhile it
measures a USSD first hop (back to back, a new session each) and the time from an STK success callback to
its receipt SMS at the (simulated) Africa's Talking. Targets: hop p99 < 100 ms, receipt p95 < 5 s.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import TOKEN, Arrivals, Gateway, bind_database, summary  # noqa: E402
from bench.notify_bench import callback_body, phone, seed_payments  # noqa: E402
from gateway.devtools.simulators.server import start_simulators  # noqa: E402
from gateway.devtools.trickle import Trickle  # noqa: E402
from shared.db import db  # noqa: E402
from shared.models import Notification  # noqa: E402

VIEWER, PASSWORD = "bench_viewer", "bench-viewer-password-1"


def prepare_viewer(database_url: str) -> None:
    from gateway.backoffice import auth
    from shared.db import init_db
    from shared.models.migrations import migrate

    init_db(database_url)
    migrate()
    with db.connection_context():
        auth.create_staff(VIEWER, PASSWORD, "viewer")


def long_polls(url: str, token: str, count: int, stop: threading.Event, statuses: Counter) -> list:
    """count clients, each long-polling until stop; a 429 waits its Retry-After, as a client should."""
    def client():
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        while not stop.is_set():
            try:
                answer = session.get(f"{url}/api/v1/events", params={"after": "now", "wait": 25}, timeout=40)
            except requests.RequestException:  # the gateway stopping at the end
                return
            statuses[answer.status_code] += 1
            if answer.status_code == 429:
                stop.wait(float(answer.headers.get("Retry-After", "2")))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def ussd_hops(url: str, seconds: float) -> list[float]:
    session, latencies, n = requests.Session(), [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        n += 1
        data = {"sessionId": f"ATUid_iso_{n}", "serviceCode": "*384*123#", "phoneNumber": "+254700000001",
                "networkCode": "63902", "text": ""}
        t0 = time.perf_counter()
        answer = session.post(f"{url}/ussd", data=data, timeout=60)
        latencies.append(time.perf_counter() - t0)
        assert answer.status_code == 200 and answer.text.startswith("CON"), answer.text
    return latencies


def receipts(url: str, arrivals: Arrivals, count: int, gap_s: float) -> list[float]:
    """STK success callbacks one every gap_s; seconds from each post to its receipt at AT."""
    starts = {}
    session = requests.Session()
    for i in range(count):
        starts[i] = time.time()
        session.post(f"{url}/mpesa/stk/callback/{TOKEN}", data=callback_body(i),
                     headers={"Content-Type": "application/json"}, timeout=60).raise_for_status()
        time.sleep(gap_s)
    arrivals.wait(count, timeout=120)
    return [arrivals.times[phone(i)] - starts[i] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--polls", type=int, default=40)
    parser.add_argument("--hooks", type=int, default=20)
    parser.add_argument("--receipts", type=int, default=30)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="lipa-iso-")
    database_url = f"sqlite:///{tmp.name}/iso.db"
    prepare_viewer(database_url)
    sims = start_simulators(port=0, callback_delay=3600)
    arrivals = Arrivals(sims.at)
    slow = Trickle(interval=4.0)
    gateway = Gateway(daraja_url=sims.daraja_url, at_url=sims.at_url, database_url=database_url)
    stop, statuses = threading.Event(), Counter()
    try:
        bind_database(database_url)
        with db.connection_context():
            seed_payments(args.receipts)
            for n in range(args.hooks):
                Notification.create(channel="webhook", kind="bench", recipient=slow.url, body=f'{{"n": {n}}}')
        token = requests.post(f"{gateway.url}/api/v1/auth/login", json={"username": VIEWER, "password": PASSWORD},
                              timeout=30).json()["token"]
        long_polls(gateway.url, token, args.polls, stop, statuses)
        deadline = time.monotonic() + 15
        while slow.open == 0 and time.monotonic() < deadline:  # the dispatcher's idle pass picks them up
            time.sleep(0.2)
        to_sms: list[float] = []
        sender = threading.Thread(target=lambda: to_sms.extend(
            receipts(gateway.url, arrivals, args.receipts, args.seconds / args.receipts)))
        sender.start()
        hops = ussd_hops(gateway.url, args.seconds)
        sender.join(180)
        held = slow.most_open
        stop.set()
        errors = gateway.log_errors()
    finally:
        gateway.stop()
        sims.stop()
        slow.stop()
        tmp.cleanup()
    hop, sms = summary(hops), summary(to_sms)
    result = {"ussd_hop": hop, "receipt_sms": sms, "long_poll_answers": dict(statuses),
              "slow_merchant_connections_at_once": held, "slow_merchant_cut_off": slow.cut_off,
              "gateway_errors": len(errors),
              "verdict": {"hop_p99_under_100ms": hop["p99"] < 0.1, "receipt_p95_under_5s": sms["p95"] < 5}}
    print(json.dumps(result, indent=2, default=lambda x: round(x, 4)))


if __name__ == "__main__":
    main()
