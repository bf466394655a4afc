"""STK callbacks ingested per second with 20% duplicates, exactly-once effects, and callback -> SMS latency.

Run: python bench/ingest_bench.py --all       (SQLite with 1 process, PostgreSQL with 2 and 4 processes)
     python bench/ingest_bench.py --db pg --workers 2 --payments 1000 --pg-url postgresql://…/lipa_bench

A real gateway (`run_gateway.py`, gunicorn gthread, N worker processes, notification dispatcher and jobs
running) against the simulators in this process. For --payments PROCESSING payments created beforehand, the
bench posts one success callback each plus 25% more exact re-sends (so 20% of all posts are duplicates), in
random order, from 50 keep-alive connections as fast as the gateway answers; a third of the re-sends follow
their original immediately, so they are in flight together. Measured: callbacks acknowledged per second,
divided by POST /bench/hello (a body of the same size, same connections) measured just before and after;
the time from posting a payment's first callback to the Africa's Talking simulator receiving its receipt
SMS. A burst's SMS queue behind it, so callback -> SMS is measured again with callbacks for a quarter as
many payments (20% duplicates too) paced at half the burst's rate. Checked afterwards, for both: every post
answered 200 and stored, every payment COMPLETED by exactly one transition, exactly one receipt SMS per
customer, no stored callback left unapplied.
"""
from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.at_fake import AtFake  # noqa: E402
from gateway.devtools.simulators.server import start_simulators  # noqa: E402
from shared.db import db  # noqa: E402
from shared.models import InboxMessage, Notification, Payment, PaymentEvent  # noqa: E402

DUPLICATE_SHARE = 0.20


def phone(i: int) -> str:
    return f"2547{40_000_000 + i:08d}"


def seed_payments(first: int, n: int) -> None:
    with db.connection_context(), db.atomic():
        for i in range(first, first + n):
            Payment.create(reference=f"LPI{i:06d}", phone=phone(i), amount=100, account="BENCH", channel="api",
                           status="PROCESSING", checkout_request_id=f"ws_CO_bench_{i}")


def posting_order(n: int, rng: random.Random) -> list[int]:
    """Payment indexes in posting order: each once, plus n/4 re-sends (20% of all posts), shuffled; a third
    of the re-sends right behind their original (concurrent with it), the rest anywhere."""
    resent = rng.sample(range(n), round(n * DUPLICATE_SHARE / (1 - DUPLICATE_SHARE)))
    adjacent = set(resent[: len(resent) // 3])
    order = list(range(n)) + [i for i in resent if i not in adjacent]
    rng.shuffle(order)
    out = []
    for i in order:
        out.append(i)
        if i in adjacent:
            out.append(i)
    return out


def post_all(port: int, order: list[int], concurrency: int, rate: float = 0.0) -> dict:
    """Post every callback in ``order`` from ``concurrency`` connections, as fast as answered or paced at
    ``rate`` per second; first-post times per payment."""
    path = f"/mpesa/stk/callback/{common.TOKEN}"
    bodies = {i: common.stk_success_body(i, phone(i)).encode() for i in set(order)}
    first_post: dict[int, float] = {}
    latencies: list[float] = []
    statuses: Counter = Counter()
    queue = iter(enumerate(order))
    began = time.time()

    async def client(conn, _):
        for k, i in queue:
            if rate and (delay := began + k / rate - time.time()) > 0:
                await asyncio.sleep(delay)
            first_post.setdefault(i, time.time())
            t0 = time.perf_counter()
            status, _ = await conn.request("POST", path, bodies[i], "application/json")
            latencies.append(time.perf_counter() - t0)
            statuses[status] += 1

    elapsed = common.run_clients(port, concurrency, client)
    return {"posts": len(order), "callbacks_per_s": len(order) / elapsed, "statuses": dict(statuses),
            "first_post": first_post, **common.summary(latencies)}


def check_effects(n: int, posts: int, counts: Counter) -> dict:
    """Zero lost, exactly once, for payments 0..n-1 (both phases) and ``posts`` callbacks in all: read back
    from the database and the SMS simulator."""
    with db.connection_context():
        statuses = Counter(p.status for p in Payment.select(Payment.status).where(Payment.reference.startswith("LPI")))
        completions = Counter(e.payment_id for e in PaymentEvent.select(PaymentEvent.payment).where(
            PaymentEvent.kind == "transition", PaymentEvent.to_status == "COMPLETED"))
        inbox = Counter(r.status for r in InboxMessage.select(InboxMessage.status).where(
            InboxMessage.source == "daraja.stk"))
        sms_rows = Counter(r.status for r in Notification.select(Notification.status).where(
            Notification.channel == "sms"))
    sms = [counts.get(phone(i), 0) for i in range(n)]
    ok = (statuses == {"COMPLETED": n} and len(completions) == n and set(completions.values()) == {1}
          and sum(inbox.values()) == posts and inbox.get("RECEIVED", 0) == 0 and set(sms) == {1})
    return {"exactly_once": ok, "payments": dict(statuses), "completed_transitions": sum(completions.values()),
            "inbox": dict(inbox), "sms_rows": dict(sms_rows), "sms_per_customer": dict(Counter(sms))}


def run_config(kind: str, workers: int, n: int, concurrency: int, pg_url: str, seed: int) -> dict:
    """A burst of callbacks for n payments, then a paced stream for n/4 more at half the burst's rate."""
    sims = start_simulators(port=0, callback_delay=3600)
    arrivals = AtFake().start()  # Africa's Talking in a process of its own, connections kept (bench/at_fake.py)
    database_url = common.fresh_pg_database(pg_url) if kind == "pg" else None
    gateway = common.Gateway(daraja_url=sims.daraja_url, at_url=arrivals.url, database_url=database_url,
                             workers=workers)
    paced_n, rng = n // 4, random.Random(seed)
    try:
        common.bind_database(gateway.database_url)
        seed_payments(0, n + paced_n)
        body = common.stk_success_body(0, phone(0)).encode()
        common.hello_floor(gateway.port, concurrency, 1.5, body)  # warm-up
        load_before = common.load_average()
        floor_a = common.hello_floor(gateway.port, concurrency, 3, body)
        order = posting_order(n, rng)
        burst = post_all(gateway.port, order, concurrency)
        arrivals.wait(n, timeout=180)
        # The second floor after the burst's receipts, not while they go out: run straight after the burst,
        # its 3 s flood of bare requests took the CPU the batches and the SMS needed, and every receipt of the
        # burst waited for it (callback → SMS p50 4-5 s, the floor's length plus the apply).
        floor_b = common.hello_floor(gateway.port, concurrency, 3, body)
        paced_order = [n + i for i in posting_order(paced_n, rng)]
        paced = post_all(gateway.port, paced_order, concurrency, rate=burst["callbacks_per_s"] / 2)
        arrivals.wait(n + paced_n, timeout=120)
        time.sleep(2.0)  # a second SMS to anyone would arrive by now
        times, counts = arrivals.arrivals()
        effects = check_effects(n + paced_n, len(order) + len(paced_order), counts)
        rss = gateway.peak_rss_mb()
        errors = gateway.log_errors()
    finally:
        gateway.stop()
        sims.stop()
        arrivals.stop()
        db.close()
    for phase, ids in ((burst, range(n)), (paced, range(n, n + paced_n))):
        first_post = phase.pop("first_post")
        phase["callback_to_sms"] = common.summary([times[phone(i)] - first_post[i] for i in ids])
    hello_rps = (floor_a["rps"] + floor_b["rps"]) / 2
    return {"database": "SQLite" if kind == "sqlite" else "PostgreSQL", "workers": workers,
            "load": f"{load_before}-{common.load_average()}", "hello_rps": hello_rps, "ingest": burst,
            "ratio": burst["callbacks_per_s"] / hello_rps, "paced": paced, "effects": effects, "rss_mb": rss,
            "log_errors": errors[:5]}


def table(results: list[dict]) -> str:
    rows = []
    for r in results:
        i, s, p, e = r["ingest"], r["ingest"]["callback_to_sms"], r["paced"], r["effects"]
        rows.append([
            f"{r['database']}, {r['workers']} process{'es' if r['workers'] > 1 else ''}", r["load"],
            f"{r['hello_rps']:.0f}", f"{i['callbacks_per_s']:.0f}",
            f"**{r['ratio']:.2f}** ({'met' if r['ratio'] >= 0.4 else 'missed'})",
            f"{common.ms(i['p50'])} / {common.ms(i['p99'])}",
            f"{s['p50']:.2f} / {s['p95']:.2f}",
            f"{p['callbacks_per_s']:.0f}/s: {p['callback_to_sms']['p50']:.2f} / **{p['callback_to_sms']['p95']:.2f}** "
            f"({'met' if p['callback_to_sms']['p95'] < 2 else 'missed'})",
            f"{i['posts'] + p['posts']} posts, {i['statuses'].get(200, 0) + p['statuses'].get(200, 0)} × 200; "
            f"{'yes' if e['exactly_once'] else '**NO**'}",
            f"{max(r['rss_mb'].values()):.0f}"])
    return common.markdown_table(
        ["configuration", "load avg", "hello req/s", "callbacks/s", "ratio (target ≥ 0.40)", "ack p50 / p99 ms",
         "burst: callback → SMS p50 / p95 s", "paced at half that: callback → SMS p50 / p95 s (target p95 < 2)",
         "zero lost, exactly once", "peak RSS MB (max process)"],
        rows)


def main() -> None:
    parser = common.config_parser(__doc__)
    parser.add_argument("--payments", type=int, default=1000, help="payments; posts are 25%% more")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    common.run_configs(args, lambda kind, workers: run_config(
        kind, workers, args.payments, args.concurrency, args.pg_url, args.seed), table)


if __name__ == "__main__":
    main()
