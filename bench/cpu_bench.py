"""CPU per request inside one process: a USSD hop, an STK callback (new and duplicate) and the bare route.

Run: python bench/cpu_bench.py                  (SQLite in a temporary file)
     python bench/cpu_bench.py --database-url postgresql://…/lipa_bench_cpu

The app is called straight through WSGI (no server, no sockets, no other process), and each figure is the
process CPU time (time.process_time) per request over a few hundred requests. CPU time, unlike requests per
second, hardly moves with what else the 2-core machine is doing, so this is the figure to compare between
commits; the HTTP benches (peer_bench.py, ingest_bench.py) give the rates and the ratios to the peer. On
PostgreSQL the database server's own CPU is not counted (it is another process).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.ingest_bench import phone, seed_payments  # noqa: E402
from bench.peer_bench import HOPS, form  # noqa: E402


def build_app(database_url: str):
    """The real app (create_app), its dispatcher and jobs not started, the bench route on."""
    os.environ.update({"DATABASE_URL": database_url, "LIPA_BENCH_ENDPOINTS": "1", "MPESA_CALLBACK_TOKEN": common.TOKEN,
                       "LIPA_PROFILE": "local"})
    from gateway.app import create_app
    from shared.config import load_config

    return create_app(load_config(read_dotenv=False), start_background=False)


def environ(path: str, body: bytes, content_type: str) -> dict:
    from werkzeug.test import EnvironBuilder

    built = EnvironBuilder(path=path, method="POST", data=body, content_type=content_type).get_environ()
    built["REMOTE_ADDR"] = "127.0.0.1"
    return built


def caller(app):
    """call(path, body, content_type) -> (status, body), through the app's WSGI interface."""
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def call(path: str, body: bytes, content_type: str = "application/x-www-form-urlencoded"):
        result = app(environ(path, body, content_type), start_response)
        data = b"".join(result)
        getattr(result, "close", lambda: None)()
        return statuses[-1], data

    return call


def cpu_us(run, n: int, settle=None) -> float:
    """CPU microseconds per request of ``run(i)`` for i in range(n) (after the caller's warm-up), ``settle()``
    included: the work the requests left for background threads (the process's CPU time counts every thread)."""
    began = time.process_time()
    for i in range(n):
        run(i)
    if settle is not None:
        settle()
    return (time.process_time() - began) / n * 1e6


def callback_costs(app, callback, n: int, settle) -> dict:
    """A new callback's two parts apart: stored and answered (the request), then applied in batches (one
    drain, after them all), so each is its own figure rather than two threads' CPU mixed."""
    drain = app.extensions["lipa"].callbacks
    kick = drain.kick
    drain.kick = lambda: None  # the requests store and answer; nothing applies yet
    try:
        stored = cpu_us(callback, n)
    finally:
        del drain.kick
    applied = cpu_us(lambda i: kick() if i == 0 else None, n, settle)
    return {"STK success callback, new: stored and answered": stored,
            "STK success callback, new: applied after, in batches": applied}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--n", type=int, default=500, help="requests per measure")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="lipa-cpu-")
    url = common.fresh_pg_database(args.database_url) if args.database_url else f"sqlite:///{tmp.name}/cpu.db"
    app = build_app(url)
    call, settle = caller(app), app.extensions["lipa"].tasks.drain
    n = args.n
    seed_payments(0, 2 * n + 50)
    # every walk a new session, as in peer_bench.py: a session's first hop reads, its later ones may not
    forms = [form(f"ATUid_cpu_{i}", text) for i in range(n) for text in HOPS]
    warm_forms = [form(f"ATUid_warm_{i}", text) for i in range(13) for text in HOPS]
    callbacks = [common.stk_success_body(i, phone(i)).encode() for i in range(2 * n + 50)]
    path = f"/mpesa/stk/callback/{common.TOKEN}"

    def hop(i):
        status, body = call("/ussd", forms[i % len(forms)])
        assert status.startswith("200") and body.startswith(b"CON"), body

    def bare(i):
        call("/bench/hello", forms[i % len(forms)])

    def callback(i):
        status, _ = call(path, callbacks[50 + i], "application/json")
        assert status.startswith("200"), status

    def duplicate(i):
        call(path, callbacks[50 + i], "application/json")

    for i in range(50):  # warm-up: every query prepared, every pool connection open
        status, body = call("/ussd", warm_forms[i])
        assert status.startswith("200") and body.startswith(b"CON"), body
        bare(i)
        call(path, callbacks[i], "application/json")
    settle()
    results = {"USSD hop (the 4-hop mix)": cpu_us(hop, 4 * n),
               "bare route (POST /bench/hello)": cpu_us(bare, 4 * n),
               **callback_costs(app, callback, n, settle),
               "STK success callback, duplicate: stored, answered, applied": cpu_us(duplicate, n, settle)}
    floor = results["bare route (POST /bench/hello)"]
    print(common.markdown_table(["request", "CPU µs", "× bare route"],
                                [[name, f"{us:.0f}", f"{us / floor:.1f}"] for name, us in results.items()]))
    print(f"{'PostgreSQL' if args.database_url else 'SQLite'}; load {common.load_average()}")


if __name__ == "__main__":
    main()
