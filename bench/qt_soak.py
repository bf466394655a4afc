"""Desktop-app soak: the real app, offscreen, signed in for MINUTES under a live feed, with flat memory.

Run: python bench/qt_soak.py [--minutes 10] [--every 1.0] [--sample 10] [--max-growth-mb 30]

Seeds a throwaway SQLite database (the demo data set of tests/seed_demo.py), serves it on a free port, and
starts `run_admin.py --username admin` offscreen in a child process. Every --every seconds it writes one more
payment moving PENDING -> PROCESSING -> COMPLETED (and, now and then, an alert), which the app's live feed
picks up and its screens reload on. Every --sample seconds it reads the child's resident memory
(/proc/<pid>/status VmRSS). The first fifth of the run is warm-up (caches, fonts, the first pages); the
growth is the largest sample after it minus the median of the warm-up's end. Prints one JSON line and exits
non-zero when the app died (PySide6 6.12.0 on Python 3.11 aborts with "none_dealloc" after ~12 minutes) or
memory grew more than --max-growth-mb. Rate limits are off: this measures the process, not the read budget.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.db import db  # noqa: E402
from shared.models import Alert, Payment, PaymentEvent  # noqa: E402
from shared.timeutil import utcnow  # noqa: E402
from tests.conftest import LiveServer  # noqa: E402
from tests.seed_demo import PASSWORD, seed  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the app runs (default 10)")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between new payments (default 1)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between memory samples (default 10)")
    parser.add_argument("--max-growth-mb", type=float, default=30.0, help="allowed growth after warm-up")
    return parser.parse_args(argv)


def serve(tmp: str):
    """The seeded demo database behind a gateway app with rate limits off, on a free local port."""
    from gateway import create_app
    from shared.config import load_config

    url = f"sqlite:///{tmp}/soak.db"
    seeded = seed(url)
    seeded.extensions["lipa"].tasks.shutdown()
    app = create_app(load_config({"LIPA_PROFILE": "local", "DATABASE_URL": url, "LIPA_API_RATE_LIMITS": "0",
                                  "MPESA_CALLBACK_TOKEN": "demo-callback-token-0123456789"}, read_dotenv=False))
    return app, LiveServer(app)


def feed_one(n: int) -> None:
    """One payment through its states, with the events the live feed reports; an alert every 50th."""
    now = utcnow()
    with db.connection_context(), db.atomic():
        p = Payment.create(reference=f"LPS{n:06d}", phone="254712345678", amount=100 + n % 900, account="SOAK",
                           channel="ussd", status="COMPLETED", checkout_request_id=f"ws_CO_soak_{n:06d}",
                           mpesa_receipt=f"SOK{n:06d}", result_code="0", created_at=now, updated_at=now,
                           completed_at=now, refunded_amount=0)
        for before, after, actor, lag in (("PENDING", "PROCESSING", "ussd", 0),
                                          ("PROCESSING", "COMPLETED", "daraja-callback", 1)):
            PaymentEvent.create(payment=p, from_status=before, to_status=after, actor=actor,
                                created_at=now + timedelta(seconds=lag))
        if n % 50 == 0:
            Alert.create(kind="stuck_payments", message=f"soak alert {n}")


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def soak(args: argparse.Namespace, url: str) -> dict:
    """Run the app under the feed; the samples and the verdict."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    app = subprocess.Popen([sys.executable, str(ROOT / "run_admin.py"), "--gateway-url", url, "--username",
                            "admin", "--password", PASSWORD], cwd=ROOT, env=env, stderr=subprocess.PIPE,
                           text=True)
    samples, n, end = [], 0, time.monotonic() + args.minutes * 60
    next_sample = time.monotonic()
    try:
        while time.monotonic() < end and app.poll() is None:
            n += 1
            feed_one(n)
            if time.monotonic() >= next_sample:
                samples.append(rss_mb(app.pid))
                next_sample += args.sample
            time.sleep(args.every)
        alive = app.poll() is None
    finally:
        app.terminate()
        try:
            _, stderr = app.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
            _, stderr = app.communicate()
    return verdict(args, [s for s in samples if s is not None], alive, n, stderr)


def verdict(args: argparse.Namespace, samples: list[float], alive: bool, payments: int, stderr: str) -> dict:
    warm = max(1, len(samples) // 5)
    baseline = statistics.median(samples[max(0, warm - 3):warm]) if samples else 0.0
    growth = (max(samples[warm:]) - baseline) if len(samples) > warm else 0.0
    return {"minutes": args.minutes, "payments_fed": payments, "alive": alive, "samples": len(samples),
            "rss_baseline_mb": round(baseline, 1), "rss_max_mb": round(max(samples, default=0.0), 1),
            "growth_mb": round(growth, 1), "ok": alive and growth <= args.max_growth_mb,
            "stderr_tail": stderr[-800:] if not alive else ""}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per long-poll otherwise
    with tempfile.TemporaryDirectory() as tmp:
        app, server = serve(tmp)
        try:
            result = soak(args, server.url)
        finally:
            server.stop()
            app.extensions["lipa"].tasks.shutdown()
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
