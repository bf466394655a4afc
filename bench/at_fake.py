"""Africa's Talking's SMS endpoint for the benches, in a process of its own under granian.

The project's simulator (gateway/devtools/simulators/africastalking.py, the same Flask app the demo and the
tests use) with each number's first arrival time and SMS count recorded, read back at
``GET /bench/arrivals``. In the bench's own process, behind werkzeug's threaded server, it closed every
connection (werkzeug always answers ``Connection: close``), started a thread per SMS and shared one GIL with
the load client: 475 SMS/s at most (notify_bench.py), below the receipts of a burst. Africa's Talking keeps
connections alive, and so does granian; the SDK's kept-alive session (gateway/providers/africastalking.py)
then reuses them, as in production.

Run by the benches: ``AtFake().start()``; by hand:
``python -m granian --interface wsgi --factory bench.at_fake:build``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build():
    """The simulator's app, its send wrapped to note when each number's first SMS arrived."""
    from gateway.devtools.simulators.africastalking import create_at_sim

    app = create_at_sim(delivery_url=None)
    state = app.extensions["at_sim"]
    times: dict[str, float] = {}
    counts: Counter = Counter()
    lock = threading.Lock()
    original = state.send

    def send(numbers, message, sender):
        result = original(numbers, message, sender)
        now = time.time()
        with lock:
            for number in numbers:
                plain = number.strip().lstrip("+")
                times.setdefault(plain, now)
                counts[plain] += 1
        return result

    state.send = send

    @app.get("/bench/arrivals")
    def arrivals():
        with lock:
            return {"times": dict(times), "counts": dict(counts)}

    return app


class AtFake:
    """The fake in a granian process on a free port; ``url`` is what AT_BASE_URL points at."""

    def __init__(self, port: int | None = None):
        from bench.common import free_port

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> AtFake:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--blocking-threads", "8", "--no-ws", "--log-level", "warning", "--factory",
             "bench.at_fake:build"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/bench/arrivals", timeout=1).raise_for_status()
                return self
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the Africa's Talking fake did not start")

    def arrivals(self) -> tuple[dict[str, float], Counter]:
        body = requests.get(self.url + "/bench/arrivals", timeout=10).json()
        return body["times"], Counter(body["counts"])

    def wait(self, count: int, timeout: float = 120.0) -> None:
        """Until ``count`` numbers have had their first SMS (polled: the fake is another process)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.arrivals()[0]) >= count:
                return
            time.sleep(0.2)
        raise RuntimeError(f"only {len(self.arrivals()[0])} of {count} SMS arrived")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

