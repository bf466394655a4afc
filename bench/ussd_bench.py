"""USSD hops per second and latency at 50 concurrent sessions, as a ratio to a bare hello in the same run.

Run: python bench/ussd_bench.py --all        (SQLite with 1 process, PostgreSQL with 2 and 4 processes)
     python bench/ussd_bench.py --db sqlite --workers 1 --seconds 10
     python bench/ussd_bench.py --db pg --workers 2 --pg-url postgresql://postgres@127.0.0.1:5432/lipa_bench

A real gateway (`run_gateway.py`, gunicorn gthread, N worker processes) against the simulators in this
process. 50 clients, each on its own keep-alive connection, walk real menus with the form posts Africa's
Talking sends (sessionId, serviceCode, phoneNumber, networkCode, text): pay (main menu -> 1 -> account ->
amount -> 1 confirm: a PENDING payment and an STK push after the END), status (main -> 2) and recent
payments (main -> 3 -> 98 next page), in turn. Each hop waits for the previous one's answer, as a phone does.
The floor is POST /bench/hello with a form body of the same size from the same 50 connections, measured just
before and just after the USSD run (the mean of the two is the divisor). Pushes use amount 55, for which the
Daraja simulator answers at once and posts no callback: the bench is about the gateway, not Daraja.

Back to back, 50 sessions keep the server saturated, so their latency is 50 / throughput (Little's law) and
says nothing a rate does not. Latency is therefore measured again with the 50 sessions pausing 0.2-1 s before
each hop (a person takes several seconds): the time a hop takes when the server is busy but not flooded.
"""
from __future__ import annotations

import asyncio
import itertools
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    Gateway,
    bind_database,
    config_parser,
    fresh_pg_database,
    hello_floor,
    load_average,
    markdown_table,
    ms,
    run_clients,
    run_configs,
    summary,
)
from gateway.devtools.simulators.server import start_simulators  # noqa: E402
from shared.db import db  # noqa: E402
from shared.models import Payment  # noqa: E402

CONCURRENCY = 50
HISTORY_PHONES = 400
PAY_AMOUNT = 55  # the Daraja simulator's "no_callback" amount: push accepted, no callback scheduled
SERVICE_CODE = "*384*1234#"
THINK_S = (0.2, 1.0)  # the pause before each hop in the second run: faster than any person types


def phone(i: int) -> str:
    return f"2547{20_000_000 + i:08d}"


def seed_history() -> None:
    """Four finished payments for each of the phones whose status and history are asked for."""
    with db.connection_context(), db.atomic():
        for i in range(HISTORY_PHONES):
            for k, status in enumerate(("COMPLETED", "FAILED", "COMPLETED", "CANCELLED")):
                Payment.create(reference=f"LPH{i:05d}{k}", phone=phone(i), amount=100 + k, account="KPLC42",
                               channel="ussd", status=status,
                               mpesa_receipt=f"RH{i:05d}{k:03d}" if status == "COMPLETED" else None)


def sessions(client: int):
    """The menus one client walks, endlessly: (kind, phone, [(text, expected prefix)])."""
    fresh = itertools.count(100_000 + client * 100_000)
    for round_no in itertools.count():
        seen = phone((client * 7 + round_no) % HISTORY_PHONES)
        yield "pay", phone(next(fresh)), [("", "CON"), ("1", "CON"), ("1*KPLC42", "CON"),
                                          (f"1*KPLC42*{PAY_AMOUNT}", "CON"), (f"1*KPLC42*{PAY_AMOUNT}*1", "END")]
        yield "status", seen, [("", "CON"), ("2", "END")]
        yield "history", seen, [("", "CON"), ("3", "CON"), ("3*98", "CON")]


def form(session_id: str, number: str, text: str) -> bytes:
    return urlencode({"sessionId": session_id, "serviceCode": SERVICE_CODE, "phoneNumber": f"+{number}",
                      "networkCode": "63902", "text": text}).encode()


def run_ussd(port: int, seconds: float, think: tuple[float, float] | None = None, phase: int = 0) -> dict:
    """50 sessions back to back (think None: each hop as soon as the last is answered), or with a pause of
    ``think`` seconds (uniform) before each hop, as a person reading the screen and typing."""
    latencies: list[float] = []
    counts = {"pay": 0, "status": 0, "history": 0, "bad": 0}
    bad: list[str] = []
    deadline = time.perf_counter() + seconds
    rng = random.Random(phase)

    async def client(conn, index):
        for n, (kind, number, hops) in enumerate(sessions(index + phase * CONCURRENCY)):
            if time.perf_counter() >= deadline:
                return
            session_id = f"ATUid_bench_{phase}_{index}_{n}"
            for text, expected in hops:
                if think:
                    await asyncio.sleep(rng.uniform(*think))
                t0 = time.perf_counter()
                status, body = await conn.request("POST", "/ussd", form(session_id, number, text),
                                                  "application/x-www-form-urlencoded")
                latencies.append(time.perf_counter() - t0)
                answer = body.decode()
                if status != 200 or not answer.startswith(expected) or "went wrong" in answer:
                    counts["bad"] += 1
                    bad.append(f"{kind} {text!r}: {status} {answer[:80]!r}")
            counts[kind] += 1

    elapsed = run_clients(port, CONCURRENCY, client)
    return {"hops_per_s": len(latencies) / elapsed, "sessions": counts, "bad_examples": bad[:5],
            **summary(latencies)}


def run_config(kind: str, workers: int, seconds: float, pg_url: str) -> dict:
    sims = start_simulators(port=0, callback_delay=3600)
    database_url = fresh_pg_database(pg_url) if kind == "pg" else None
    gateway = Gateway(daraja_url=sims.daraja_url, at_url=sims.at_url, database_url=database_url, workers=workers)
    try:
        bind_database(gateway.database_url)
        seed_history()
        body = form("ATUid_bench_floor_000", phone(0), "1*KPLC42*55")
        hello_floor(gateway.port, CONCURRENCY, 1.5, body)  # warm-up: every worker and thread answers once
        load_before = load_average()
        floor_a = hello_floor(gateway.port, CONCURRENCY, seconds / 3, body)
        ussd = run_ussd(gateway.port, seconds)
        floor_b = hello_floor(gateway.port, CONCURRENCY, seconds / 3, body)
        paced = run_ussd(gateway.port, seconds, think=THINK_S, phase=1)
        pushes = _wait_pushes(sims, ussd["sessions"]["pay"] + paced["sessions"]["pay"])
        rss = gateway.peak_rss_mb()
        errors = gateway.log_errors()
    finally:
        gateway.stop()
        sims.stop()
        db.close()
    hello_rps = (floor_a["rps"] + floor_b["rps"]) / 2
    return {"database": "SQLite" if kind == "sqlite" else "PostgreSQL", "workers": workers,
            "load": f"{load_before}-{load_average()}", "hello_rps": hello_rps, "hello_p50": floor_a["p50"],
            "ussd": ussd, "ratio": ussd["hops_per_s"] / hello_rps, "paced": paced, "pushes": pushes,
            "rss_mb": rss, "log_errors": errors[:5]}


def _wait_pushes(sims, expected: int, timeout: float = 30.0) -> int:
    """Every confirmed session's STK push reaches the Daraja simulator (after its END was answered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(sims.daraja.requests_log()) < expected:
        time.sleep(0.2)
    return len(sims.daraja.requests_log())


def table(results: list[dict]) -> str:
    rows = []
    for r in results:
        u, p = r["ussd"], r["paced"]
        sessions_done = sum(v for k, v in u["sessions"].items() if k != "bad") + sum(
            v for k, v in p["sessions"].items() if k != "bad")
        rows.append([
            f"{r['database']}, {r['workers']} process{'es' if r['workers'] > 1 else ''}", r["load"],
            f"{r['hello_rps']:.0f}", f"{u['hops_per_s']:.0f}",
            f"**{r['ratio']:.2f}** ({'met' if r['ratio'] >= 0.5 else 'missed'})", f"{ms(u['p50'])} / {ms(u['p99'])}",
            f"{p['hops_per_s']:.0f}/s: {ms(p['p50'])} / **{ms(p['p99'])}** ({'met' if p['p99'] < 0.05 else 'missed'})",
            f"{sessions_done} / {u['sessions']['bad'] + p['sessions']['bad']}",
            f"{r['pushes']} of {u['sessions']['pay'] + p['sessions']['pay']}", f"{max(r['rss_mb'].values()):.0f}"])
    return markdown_table(
        ["configuration", "load avg", "hello req/s", "USSD hops/s", "ratio (target ≥ 0.50)",
         "back to back: hop p50 / p99 ms", "with 0.2-1 s pauses: hop p50 / p99 ms (target p99 < 50)",
         "sessions / bad answers", "STK pushes sent", "peak RSS MB (max process)"], rows)


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each USSD run per configuration")
    args = parser.parse_args()
    run_configs(args, lambda kind, workers: run_config(kind, workers, args.seconds, args.pg_url), table)


if __name__ == "__main__":
    main()
