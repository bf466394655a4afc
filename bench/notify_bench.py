"""Callback -> SMS latency and dispatcher throughput, against a real gateway process.

Run: python bench/notify_bench.py [--n 200] [--concurrency 8] [--database-url postgresql://…]

Measures, in one run on this machine:
  1. bare: POST /healthz round trips at the same concurrency (the server's floor);
  2. callback -> SMS handed to Africa's Talking: for N STK success callbacks posted to the gateway, the
     time from posting each callback to the (simulated) Africa's Talking API receiving its receipt SMS,
     once paced at --rate callbacks/s (traffic as it arrives) and once as a burst (as fast as possible);
  3. dispatcher throughput: M queued notifications drained by the gateway's dispatcher, against the
     same M messages sent directly through the SDK adapter in this process (the raw floor).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import TOKEN, Arrivals, Gateway, bind_database, stk_success_body, summary  # noqa: E402
from gateway.providers.africastalking import SmsSender  # noqa: E402
from gateway.devtools.simulators.server import start_simulators  # noqa: E402
from shared.db import db  # noqa: E402
from shared.models import Notification, Payment  # noqa: E402


def phone(i: int) -> str:
    return f"2547{10_000_000 + i:08d}"


def callback_body(i: int) -> str:
    return stk_success_body(i, phone(i))


def seed_payments(n: int) -> None:
    with db.atomic():
        for i in range(n):
            Payment.create(reference=f"LPB{i:06d}", phone=phone(i), amount=100, account="BENCH",
                           channel="api", status="PROCESSING", checkout_request_id=f"ws_CO_bench_{i}")


def timed_posts(url: str, bodies: list, concurrency: int, rate: float = 0.0) -> tuple[list[float], list[float], float]:
    """POST each body (as fast as possible, or paced at `rate` per second); returns (starts, latencies, elapsed)."""
    session = requests.Session()
    starts, latencies = [0.0] * len(bodies), [0.0] * len(bodies)
    began_wall = time.time()

    def one(i):
        if rate:
            delay = began_wall + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        starts[i] = time.time()
        t0 = time.perf_counter()
        response = session.post(url, data=bodies[i], headers={"Content-Type": "application/json"}, timeout=30)
        latencies[i] = time.perf_counter() - t0
        assert response.status_code == 200, response.text

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(len(bodies))))
    return starts, latencies, time.perf_counter() - began


def bench_bare(gateway: Gateway, n: int, concurrency: int) -> dict:
    session = requests.Session()
    latencies = []

    def one(_):
        t0 = time.perf_counter()
        assert session.get(f"{gateway.url}/healthz", timeout=30).status_code == 200
        latencies.append(time.perf_counter() - t0)

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    return {"rps": n / (time.perf_counter() - began), **summary(latencies)}


def bench_callbacks(gateway: Gateway, arrivals: Arrivals, ids: range, concurrency: int, rate: float = 0.0) -> dict:
    """Callbacks for payments `ids`: burst (rate 0) or paced; latency from post to SMS at the provider."""
    url = f"{gateway.url}/mpesa/stk/callback/{TOKEN}"
    before = len(arrivals.times)
    starts, latencies, elapsed = timed_posts(url, [callback_body(i) for i in ids], concurrency, rate)
    arrivals.wait(before + len(ids))
    to_sms = [arrivals.times[phone(i)] - starts[k] for k, i in enumerate(ids)]
    return {"offered_rate": rate or "burst", "callbacks_per_s": len(ids) / elapsed, "ack": summary(latencies),
            "callback_to_sms": summary(to_sms)}


def bench_dispatcher(arrivals: Arrivals, at_url: str, m: int) -> dict:
    offset = 500_000
    before = len(arrivals.times)
    began = time.time()
    with db.atomic():
        for i in range(m):
            Notification.create(channel="sms", kind="bench", recipient=phone(offset + i), body="Lipa bench message")
    arrivals.wait(before + m, timeout=300)
    times = sorted(arrivals.times[phone(offset + i)] for i in range(m))
    drained = times[-1] - times[0]
    sender = SmsSender(username="sandbox", api_key="bench", base_url=at_url)
    t0 = time.perf_counter()
    for i in range(m):
        sender.send(phone(900_000 + i), "Lipa bench message")
    raw = time.perf_counter() - t0
    return {"dispatcher_msgs_per_s": m / drained if drained else float("inf"), "raw_sdk_msgs_per_s": m / raw,
            "ratio": (m / drained) / (m / raw) if drained else None, "first_pickup_s": times[0] - began}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--m", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=50.0, help="paced callbacks per second")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    sims = start_simulators(port=0, callback_delay=3600)
    arrivals = Arrivals(sims.at)
    gateway = Gateway(daraja_url=sims.daraja_url, at_url=sims.at_url, database_url=args.database_url,
                      workers=args.workers)
    try:
        bind_database(gateway.database_url)
        with db.connection_context():
            seed_payments(2 * args.n)
            bare = bench_bare(gateway, args.n, args.concurrency)
            paced = bench_callbacks(gateway, arrivals, range(args.n), args.concurrency, args.rate)
            burst = bench_callbacks(gateway, arrivals, range(args.n, 2 * args.n), args.concurrency)
            dispatcher = bench_dispatcher(arrivals, sims.at_url, args.m)
    finally:
        gateway.stop()
        sims.stop()
    result = {"database": "postgresql" if args.database_url else "sqlite", "workers": args.workers,
              "concurrency": args.concurrency, "bare_healthz": bare, "callbacks_paced": paced,
              "callbacks_burst": burst, "dispatcher": dispatcher,
              "burst_callback_rate_vs_bare": burst["callbacks_per_s"] / bare["rps"]}
    print(json.dumps(result, indent=2, default=lambda x: round(x, 4)))


if __name__ == "__main__":
    main()
