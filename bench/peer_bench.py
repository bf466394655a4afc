"""Lipa's USSD hops against the peer a USSD developer would pick: ussd-menu-builder on Express (Node), and a
bare route on Lipa's own server, interleaved in one run.

Run: python bench/peer_bench.py                     (SQLite, --workers 2, 10 s per run, two rounds)
     python bench/peer_bench.py --db pg --workers 2 --seconds 10
     python bench/peer_bench.py --server gunicorn,gevent,granian   (one gateway per server, interleaved)

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
    parser.add_argument("--server", default="", help="comma-separated LIPA_SERVER values, one gateway each "
                        "(gunicorn, gevent, granian); default: what run_gateway.py serve starts")
    args = parser.parse_args()
    install_peer()
    sims = start_simulators(port=0, callback_delay=3600)
    servers = [name.strip() for name in args.server.split(",") if name.strip()] or [""]
    gateways = {}
    peer, peer_port = start_peer()
    best: dict[str, dict] = {}
    load = load_average()
    try:
        for server in servers:  # each its own database (a PostgreSQL one per server: lipa_bench_<server>)
            url = fresh_pg_database(f"{args.pg_url}_{server}" if server else args.pg_url) if args.db == "pg" else None
            gateways[server] = Gateway(daraja_url=sims.daraja_url, at_url=sims.at_url, database_url=url,
                                       workers=args.workers, env={"LIPA_SERVER": server} if server else None)
            run_mix(gateways[server].port, 1.5, f"warm{server}")
        run_mix(peer_port, 1.5, "warm")
        runs = [("peer", peer_port, "/ussd")] + [
            (f"{kind}:{server}", gateways[server].port, path) for server in servers
            for kind, path in (("lipa", "/ussd"), ("bare", "/bench/hello"))]
        for r in range(args.rounds):
            for name, port, path in runs:
                result = run_mix(port, args.seconds, f"{name}{r}".replace(":", "_"), path)
                if name not in best or result["hops_per_s"] > best[name]["hops_per_s"]:
                    best[name] = result
        rss = {server: gateway.peak_rss_mb() for server, gateway in gateways.items()}
        errors = sum(len(gateway.log_errors()) for gateway in gateways.values())
    finally:
        peer.terminate()
        for gateway in gateways.values():
            gateway.stop()
        sims.stop()
    print(table(best, args, servers, f"{load}-{load_average()}", rss, errors))


def table(best: dict, args, servers: list[str], load: str, rss: dict, errors: int) -> str:
    target = 1.0 if args.db == "sqlite" else 0.8
    peer = best["peer"]
    rows = [["ussd-menu-builder 1.2.0 on Express 5 (Node, 1 process)", f"{peer['hops_per_s']:.0f}", "—", "—",
             f"{ms(peer['p50'])} / {ms(peer['p99'])}", peer["bad"], "—"]]
    verdicts = []
    for server in servers:
        lipa, bare = best[f"lipa:{server}"], best[f"bare:{server}"]
        ratio = lipa["hops_per_s"] / peer["hops_per_s"]
        rows.append([f"Lipa /ussd on {server or 'the default server'} ({args.db}, {args.workers} workers)",
                     f"{lipa['hops_per_s']:.0f}", f"{bare['hops_per_s']:.0f}", f"**{ratio:.2f}**",
                     f"{ms(lipa['p50'])} / {ms(lipa['p99'])} (bare {ms(bare['p99'])})", lipa["bad"] + bare["bad"],
                     f"{max(rss[server].values()):.0f}"])
        met = "met" if ratio >= target else "missed"
        verdicts.append(f"{server or 'default'}: ÷ peer {ratio:.2f} (≥ {target}: {met}),"
                        f" ÷ bare {lipa['hops_per_s'] / bare['hops_per_s']:.2f}, p99 < 50 ms: "
                        f"{'met' if lipa['p99'] < 0.05 else 'missed'}")
    header = ["server", "hops/s", "bare route req/s", "Lipa ÷ peer", "p50 / p99 ms", "non-2xx or wrong", "peak RSS MB"]
    return (markdown_table(header, rows) + "\n\n" + "; ".join(verdicts)
            + f"\nload {load} (shared machine); gateway ERROR lines: {errors}")


if __name__ == "__main__":
    main()
