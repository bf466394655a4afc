"""Shared pieces of the benchmarks: a real gateway process, a light load generator, memory and load figures."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import requests

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-callback-token-0123456789"
PG_URL = "postgresql://postgres@127.0.0.1:5432/lipa_bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values, pct: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def summary(values) -> dict:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "max": max(values), "mean": statistics.fmean(values)}


def load_average() -> str:
    """The 1-minute load average now (other people's work on this 2-core machine shows here)."""
    return Path("/proc/loadavg").read_text().split()[0]


def fresh_pg_database(url: str) -> str:
    """Drop and create the database named in ``url`` (a benchmark's own, never a shared one)."""
    import psycopg2

    name = urlparse(url).path.lstrip("/")
    if not name.startswith("lipa_bench"):
        raise SystemExit(f"refusing to empty {name!r}: benchmark databases are named lipa_bench*")
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return url


def bind_database(url: str) -> None:
    """Bind this process to the gateway's database with its personal-data keys (in the local profile the
    gateway keeps them in the database), so the bench can seed and check rows."""
    from shared.privacy import crypto
    from shared.config import load_config
    from shared.db import init_db

    init_db(url)
    crypto.install(load_config({"LIPA_PROFILE": "local", "DATABASE_URL": url}, read_dotenv=False))


class Gateway:
    """`python run_gateway.py` in a subprocess, simulators off, pointed at the given provider URLs, with
    the benchmark floor GET/POST /bench/hello switched on (LIPA_BENCH_ENDPOINTS=1)."""

    def __init__(self, *, daraja_url: str, at_url: str, database_url: str | None = None, workers: int = 1,
                 env: dict | None = None):
        self.tmp = tempfile.TemporaryDirectory(prefix="lipa-bench-")
        self.database_url = database_url or f"sqlite:///{self.tmp.name}/bench.db"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": self.database_url,
               "MPESA_BASE_URL": daraja_url, "AT_BASE_URL": at_url, "MPESA_CALLBACK_TOKEN": TOKEN,
               "LIPA_PROFILE": "local", "LIPA_BENCH_ENDPOINTS": "1", **(env or {})}
        self.log = open(Path(self.tmp.name) / "gateway.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run_gateway.py"), "--port", str(self.port), "--no-simulators",
             "--workers", str(workers)], cwd=self.tmp.name, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.workers = workers
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        """Healthy, and every worker forked (each answers /bench/hello once up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if (requests.get(f"{self.url}/bench/hello", timeout=1).status_code == 200
                        and len(self.pids()) >= 1 + self.workers):
                    time.sleep(0.5 * self.workers)  # the last workers finish create_app()
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not become ready; see {self.log.name}")

    def pids(self) -> list[int]:
        """The gunicorn master and its workers."""
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    children.append(int(entry.name))
        return [self.proc.pid, *sorted(children)]

    def peak_rss_mb(self) -> dict[int, float]:
        """VmHWM (peak resident set) of every gateway process so far, in MB."""
        out = {}
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        out[pid] = int(line.split()[1]) / 1024
            except OSError:
                pass
        return out

    def log_errors(self) -> list[str]:
        """Tracebacks and ERROR lines the gateway logged (a benchmark must not hide failures)."""
        self.log.flush()
        text = (Path(self.tmp.name) / "gateway.log").read_text(errors="replace")
        return [line for line in text.splitlines() if "Traceback" in line or " ERROR " in line]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()
        self.tmp.cleanup()


class HttpConn:
    """One keep-alive HTTP/1.1 connection on asyncio: a load generator that costs the 2-core machine far
    less CPU per request than `requests` in threads (so more of it is left to the server measured)."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"", content_type: str = "") -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
            if content_type:
                head += f"Content-Type: {content_type}\r\n"
            try:
                self.writer.write(head.encode() + b"\r\n" + body)
                return await self._response()
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()  # the server closed an idle keep-alive connection: once more on a new one
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _response(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def run_clients(port: int, count: int, client) -> float:
    """Run ``count`` concurrent ``client(conn, index)`` coroutines, each on its own connection; seconds taken."""

    async def main():
        conns = [HttpConn(port) for _ in range(count)]
        began = time.perf_counter()
        try:
            await asyncio.gather(*(client(conn, i) for i, conn in enumerate(conns)))
        finally:
            for conn in conns:
                conn.close()
        return time.perf_counter() - began

    return asyncio.run(main())


def hello_floor(port: int, concurrency: int, seconds: float, body: bytes = b"") -> dict:
    """POST /bench/hello (a body like the real route's) from ``concurrency`` connections for ``seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(conn, _):
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            status, text = await conn.request("POST", "/bench/hello", body, "application/x-www-form-urlencoded")
            latencies.append(time.perf_counter() - t0)
            assert status == 200 and text == b"hello", (status, text)

    elapsed = run_clients(port, concurrency, client)
    return {"rps": len(latencies) / elapsed, **summary(latencies)}


class Arrivals:
    """Wraps the Africa's Talking simulator's send: when each number's first SMS arrived (wall clock), and
    how many SMS each number got (exactly-once checks)."""

    def __init__(self, state):
        self.times: dict[str, float] = {}
        self.counts: Counter = Counter()
        self.cond = threading.Condition()
        original = state.send

        def send(numbers, message, sender):
            result = original(numbers, message, sender)
            with self.cond:
                for number in numbers:
                    plain = number.strip().lstrip("+")
                    self.times.setdefault(plain, time.time())
                    self.counts[plain] += 1
                self.cond.notify_all()
            return result

        state.send = send

    def wait(self, count: int, timeout: float = 120.0) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.times) >= count, timeout=timeout):
                raise RuntimeError(f"only {len(self.times)} of {count} SMS arrived")


def stk_success_body(index: int, phone: str, amount: int = 100) -> str:
    """An STK success callback as Daraja posts it, for CheckoutRequestID ws_CO_bench_<index>."""
    return json.dumps({"Body": {"stkCallback": {
        "MerchantRequestID": f"m-{index}", "CheckoutRequestID": f"ws_CO_bench_{index}", "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": float(amount)}, {"Name": "MpesaReceiptNumber", "Value": f"RB{index:08d}"},
            {"Name": "Balance"}, {"Name": "TransactionDate", "Value": 20261123101010},
            {"Name": "PhoneNumber", "Value": int(phone)}]}}}})


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


CONFIGS = (("sqlite", 1), ("pg", 2), ("pg", 4))  # the configurations: SQLite 1 process, PG 2 and 4


def config_parser(doc: str) -> argparse.ArgumentParser:
    """The options every load bench shares: which database and process count (or --all of CONFIGS)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--all", action="store_true", help="SQLite 1 process, PostgreSQL 2 and 4 processes")
    parser.add_argument("--db", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pg-url", default=PG_URL, help="emptied and re-created by the bench")
    parser.add_argument("--json", help="also write the full results to this file")
    return parser


def run_configs(args, run_one, table) -> None:
    """Run ``run_one(kind, workers)`` per configuration, each result as JSON on stderr as it comes, then the
    markdown table on stdout (and every result to --json)."""
    results = []
    for kind, workers in (CONFIGS if args.all else ((args.db, args.workers),)):
        result = run_one(kind, workers)
        print(json.dumps(result, default=lambda x: round(x, 4)), file=sys.stderr, flush=True)
        results.append(result)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=lambda x: round(x, 4)))
