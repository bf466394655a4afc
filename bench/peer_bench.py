"""Lipa's USSD hops against the peer a USSD developer would pick: ussd-menu-builder on Express (Node), and a
bare route on Lipa's own server, interleaved in one run.

Run: python bench/peer_bench.py                     (SQLite, --workers 2, 10 s per run, two rounds)
     python bench/peer_bench.py --db pg --workers 2 --seconds 10

The mix is the issue's: a 4-hop walk (main menu, pay, account, amount), every session a new id, 50
connections back to back. The peer (bench/peer/server.js) answers the same screens from memory; it is
installed from npm by this script (`npm install` in bench/peer, nothing committed). The bare route is
POST /bench/hello on the same gateway processes (LIPA_BENCH_ENDPOINTS=1), the ceiling of the Python server
itself. Each round runs peer, Lipa and bare route one after the other; the best round of each is reported.
Targets (issue 15): Lipa ≥ 1.0 × the peer's hops/s on SQLite (≥ 0.8 × on PostgreSQL with 2 processes),
p99 < 50 ms, no non-2xx answer.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PG_URL, Gateway, fresh_pg_database, load_average, markdown_table, ms, run_clients, summary  # noqa: E402,E501
from gateway.devtools.simulators.server import start_simulators  # noqa: E402

PEER = Path(__file__).resolve().parent / "peer"
CONCURRENCY = 50
HOPS = ("", "1", "1*KPLC42", "1*KPLC42*55")


def install_peer() -> None:
    """ussd-menu-builder and Express from the npm registry, once (bench/peer/node_modules)."""
    if not (PEER / "node_modules" / "ussd-menu-builder").exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=PEER, check=True)


def start_peer() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(["node", "server.js", "0"], cwd=PEER, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening"):
        proc.kill()
        raise RuntimeError(f"the peer did not start: {line!r}")
    return proc, int(line.split()[1])


def form(session_id: str, text: str) -> bytes:
    return urlencode({"sessionId": session_id, "serviceCode": "*384*123#", "phoneNumber": "+254712345678",
                      "networkCode": "63902", "text": text}).encode()


def run_mix(port: int, seconds: float, tag: str, path: str = "/ussd") -> dict:
    """50 connections walking the 4-hop mix back to back (or posting the same forms to ``path``)."""
    latencies: list[float] = []
    bad = [0]
    deadline = time.perf_counter() + seconds

    async def client(conn, index):
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            session_id = f"ATUid_peer_{tag}_{index}_{n}"
            for text in HOPS:
                t0 = time.perf_counter()
                status, body = await conn.request("POST", path, form(session_id, text),
                                                  "application/x-www-form-urlencoded")
                latencies.append(time.perf_counter() - t0)
                if status != 200 or (path == "/ussd" and not body.startswith(b"CON")):
                    bad[0] += 1

    elapsed = run_clients(port, CONCURRENCY, client)
    return {"hops_per_s": len(latencies) / elapsed, "bad": bad[0], **summary(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pg-url", default=PG_URL)
    args = parser.parse_args()
    install_peer()
    sims = start_simulators(port=0, callback_delay=3600)
    database_url = fresh_pg_database(args.pg_url) if args.db == "pg" else None
    gateway = Gateway(daraja_url=sims.daraja_url, at_url=sims.at_url, database_url=database_url,
                      workers=args.workers)
    peer, peer_port = start_peer()
    best: dict[str, dict] = {}
    load = load_average()
    try:
        run_mix(gateway.port, 1.5, "warm")
        run_mix(peer_port, 1.5, "warm")
        for r in range(args.rounds):
            for name, port, path in (("peer", peer_port, "/ussd"), ("lipa", gateway.port, "/ussd"),
                                     ("bare", gateway.port, "/bench/hello")):
                result = run_mix(port, args.seconds, f"{name}{r}", path)
                if name not in best or result["hops_per_s"] > best[name]["hops_per_s"]:
                    best[name] = result
        rss = max(gateway.peak_rss_mb().values())
    finally:
        peer.terminate()
        gateway.stop()
        sims.stop()
    print(table(best, args, f"{load}-{load_average()}", rss))


def table(best: dict, args, load: str, rss: float) -> str:
    target = 1.0 if args.db == "sqlite" else 0.8
    lipa, peer, bare = best["lipa"], best["peer"], best["bare"]
    ratio = lipa["hops_per_s"] / peer["hops_per_s"]
    rows = [[name, f"{r['hops_per_s']:.0f}", f"{ms(r['p50'])} / {ms(r['p99'])}", r["bad"]]
            for name, r in (("ussd-menu-builder 1.2.0 on Express 5 (Node, 1 process)", peer),
                            (f"Lipa /ussd ({args.db}, {args.workers} workers)", lipa),
                            ("bare /bench/hello on Lipa's server", bare))]
    verdict = (f"\nLipa ÷ peer = **{ratio:.2f}** (target ≥ {target}: {'met' if ratio >= target else 'missed'}); "
               f"Lipa ÷ bare route = {lipa['hops_per_s'] / bare['hops_per_s']:.2f}; Lipa p99 {ms(lipa['p99'])} ms "
               f"(target < 50: {'met' if lipa['p99'] < 0.05 else 'missed'}); non-2xx or wrong screens: "
               f"{lipa['bad']}; peak RSS {rss:.0f} MB; load {load}")
    return markdown_table(["server", "hops/s", "p50 / p99 ms", "bad"], rows) + verdict


if __name__ == "__main__":
    main()
