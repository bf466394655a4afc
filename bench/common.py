"""Shared pieces of the benchmarks: start a real gateway process against in-process simulators."""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-callback-token-0123456789"


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


class Gateway:
    """`python run_gateway.py` in a subprocess, simulators off, pointed at the given provider URLs."""

    def __init__(self, *, daraja_url: str, at_url: str, database_url: str | None = None, workers: int = 1):
        self.tmp = tempfile.TemporaryDirectory(prefix="lipa-bench-")
        self.database_url = database_url or f"sqlite:///{self.tmp.name}/bench.db"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": self.database_url,
               "MPESA_BASE_URL": daraja_url, "AT_BASE_URL": at_url, "MPESA_CALLBACK_TOKEN": TOKEN,
               "LIPA_PROFILE": "local"}
        self.log = open(Path(self.tmp.name) / "gateway.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run_gateway.py"), "--port", str(self.port), "--no-simulators",
             "--workers", str(workers)], cwd=self.tmp.name, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("gateway did not become healthy")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()
        self.tmp.cleanup()
