"""API read speed on a large SQLite database: payment list pages, one payment's timeline, a month's stats.

Run: python bench/api_bench.py [--n 1000000] [--samples 200] [--warmup 20] [--workers 1] [--out result.json]

Gets (or builds, then caches under /tmp) a database of N payments with bench/api_data.py, starts
`run_gateway.py --no-simulators --no-scheduler` on it in a subprocess (provider URLs are dummies, API rate
limits off), creates an admin, logs in, then times requests sequentially over one keep-alive
requests.Session. The routes are interleaved round by round (one request of each route per round, after
--warmup unrecorded rounds), so every route sees the same machine conditions as the bare `GET /healthz`
it is compared with. Prints JSON: p50/p95/p99 per route in ms, each route's p50 and p95 as a ratio to the
healthz p50 of the same run, the target and whether p95 meets it (page < 50 ms, timeline < 30 ms, month
stats < 300 ms), and the load average before and after.

To measure a change before it is merged: copy the checkout, edit the copy, copy the generated database,
and run `python bench/api_bench.py --root /tmp/copy --db /tmp/copy.db` (the copy's gateway migrates the
copied database at start-up; the cached one stays as generated).

The scheduler is off: its jobs would write to the database during the run (and the retention job would
trim the generated callbacks). The database file is read once before starting (warm OS page cache, as on a
server that has been up a while); --cold skips that.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.api_data import ensure  # noqa: E402
from bench.common import ROOT, TOKEN, free_port, summary  # noqa: E402

USERNAME, PASSWORD = "bench_admin", "bench-admin-password-1"
TARGETS = {"page": 50.0, "timeline": 30.0, "stats": 300.0}  # p95, ms
EAT = timedelta(hours=3)


class ApiGateway:
    """`python run_gateway.py` in a subprocess on the given database, simulators and scheduler off."""

    def __init__(self, database_url: str, *, workers: int = 1, scheduler: bool = False, root: Path = ROOT):
        self.tmp = tempfile.TemporaryDirectory(prefix="lipa-api-bench-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(root), "DATABASE_URL": database_url,
               "MPESA_BASE_URL": "http://127.0.0.1:9", "AT_BASE_URL": "http://127.0.0.1:9",
               "MPESA_CALLBACK_TOKEN": TOKEN, "LIPA_PROFILE": "local", "LIPA_API_RATE_LIMITS": "0"}
        args = [sys.executable, str(root / "run_gateway.py"), "--port", str(self.port), "--no-simulators",
                "--workers", str(workers)]
        if not scheduler:
            args.append("--no-scheduler")
        self.log_path = Path(self.tmp.name) / "gateway.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, cwd=self.tmp.name, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.log.flush()
        raise RuntimeError("gateway did not become healthy:\n" + self.log_path.read_text()[-3000:])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()
        self.tmp.cleanup()


def prepare_admin(database_url: str) -> None:
    """An admin with a known password (created once, its password reset on later runs)."""
    from gateway.backoffice import auth
    from shared.db import db, init_db, write_tx
    from shared.models.migrations import migrate
    from shared.models import Staff

    init_db(database_url)
    migrate()
    with db.connection_context():
        staff = Staff.get_or_none(Staff.username == USERNAME)
        if staff is None:
            auth.create_staff(USERNAME, PASSWORD, "admin")
        else:
            with write_tx():
                Staff.update(password_hash=auth.hash_password(PASSWORD), role="admin", active=True).where(
                    Staff.id == staff.id).execute()
    db.close()


def prewarm(path: Path) -> float:
    """Read the database file once (the OS page cache keeps it); seconds taken."""
    started = time.perf_counter()
    with open(path, "rb") as handle:
        while handle.read(8 << 20):
            pass
    return time.perf_counter() - started


def nairobi_day(utc: datetime) -> date:
    return (utc + EAT).date()


def walk_cursors(session, url: str, pages: int, keep_from: int) -> list[str]:
    """Follow next_cursor from the first page; the cursors of pages keep_from..pages."""
    cursors, cursor = [], None
    for page in range(1, pages + 1):
        answer = session.get(url + (f"&cursor={cursor}" if cursor else ""), timeout=30).json()
        cursor = answer.get("next_cursor")
        if not cursor:
            break
        if page + 1 >= keep_from:
            cursors.append(cursor)
    return cursors


def build_routes(session, base: str, meta: dict, rng: random.Random) -> list[tuple[str, str | None, object]]:
    """(name, target group or None, callable(round) -> path)."""
    api = f"{base}/api/v1"
    end = datetime.fromisoformat(meta["end"])
    today = nairobi_day(end)
    week_recent = f"from={today - timedelta(days=6)}&to={today}"
    mid = today - timedelta(days=45)
    week_mid = f"from={mid - timedelta(days=6)}&to={mid}"
    month = f"from={today - timedelta(days=29)}&to={today}"
    all_days = f"from={nairobi_day(datetime.fromisoformat(meta['start']))}&to={today}"
    phone = meta["phone_many"]["phone"]
    big, typical = meta["account_big"]["account"], meta["account_typical"]["account"]
    receipts, rich_ids, n = meta["receipts"], meta["rich_ids"], meta["n"]

    def fixed(path):
        return lambda i: path

    deep = {
        "page_deep_unfiltered": f"{api}/payments?limit=50",
        "page_deep_status_completed": f"{api}/payments?limit=50&status=COMPLETED",
        "page_deep_week_mid": f"{api}/payments?limit=50&{week_mid}",
        "page_deep_account_big": f"{api}/payments?limit=50&account={big}",
    }
    deep_cursors = {name: walk_cursors(session, url, 30, 5) for name, url in deep.items()}

    def cycling(url, cursors):
        return lambda i: f"{url}&cursor={cursors[i % len(cursors)]}" if cursors else url

    routes = [
        ("healthz", None, fixed(f"{base}/healthz")),
        ("page_first", "page", fixed(f"{api}/payments?limit=50")),
        ("page_status_completed", "page", fixed(f"{api}/payments?limit=50&status=COMPLETED")),
        ("page_status_failed", "page", fixed(f"{api}/payments?limit=50&status=FAILED")),
        ("page_status_refunded", "page", fixed(f"{api}/payments?limit=50&status=REFUNDED")),
        ("page_phone", "page", fixed(f"{api}/payments?limit=50&phone={phone}")),
        ("page_account_big", "page", fixed(f"{api}/payments?limit=50&account={big}")),
        ("page_account_typical", "page", fixed(f"{api}/payments?limit=50&account={typical}")),
        ("page_q_receipt", "page", lambda i: f"{api}/payments?limit=50&q={receipts[i % len(receipts)]}"),
        ("page_week_recent", "page", fixed(f"{api}/payments?limit=50&{week_recent}")),
        ("page_week_mid", "page", fixed(f"{api}/payments?limit=50&{week_mid}")),
        ("page_status_unpaid", "page", fixed(f"{api}/payments?limit=50&status=FAILED,CANCELLED,EXPIRED")),
        ("page_status_paid", "page", fixed(f"{api}/payments?limit=50&status=COMPLETED,SETTLED")),
        ("page_flagged", "page", fixed(f"{api}/payments?limit=50&flagged=true")),
        ("page_90_days", "page", fixed(f"{api}/payments?limit=50&{all_days}")),
        ("page_status_failed_week_mid", "page", fixed(f"{api}/payments?limit=50&status=FAILED&{week_mid}")),
        ("page_status_active_90_days", "page", fixed(f"{api}/payments?limit=50&status=PENDING,PROCESSING&{all_days}")),
        ("page_account_typical_90_days", "page", fixed(f"{api}/payments?limit=50&account={typical}&{all_days}")),
        ("page_channel_staff_week_mid", "page", fixed(f"{api}/payments?limit=50&channel=staff&{week_mid}")),
        ("page_status_account_big", "page", fixed(f"{api}/payments?limit=50&status=COMPLETED&account={big}")),
        ("page_status_account_typical", "page", fixed(f"{api}/payments?limit=50&status=FAILED&account={typical}")),
        *[(name, "page", cycling(url, deep_cursors[name])) for name, url in deep.items()],
        ("timeline_random", "timeline", lambda i: f"{api}/payments/{rng.randint(1, n)}"),
        ("timeline_rich", "timeline", lambda i: f"{api}/payments/{rich_ids[rng.randrange(len(rich_ids))]}"),
        ("stats_month", "stats", fixed(f"{api}/stats?{month}")),
        ("stats_day", "stats", fixed(f"{api}/stats?from={today}&to={today}")),
    ]
    return routes


def measure(session, routes, *, samples: int, warmup: int, log) -> tuple[dict, dict]:
    """Interleaved rounds; (ms samples per route, facts about the last answer of each route)."""
    times = {name: [] for name, _, _ in routes}
    facts = {}
    for i in range(warmup + samples):
        for name, _, path in routes:
            url = path(i)
            started = time.perf_counter()
            response = session.get(url, timeout=60)
            body = response.content
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{name}: {url} answered {response.status_code}: {body[:300]!r}")
            if i >= warmup:
                times[name].append(elapsed)
            if i == warmup + samples - 1:
                data = json.loads(body)
                facts[name] = {"bytes": len(body)}
                if isinstance(data, dict) and "items" in data:
                    facts[name]["items"] = len(data["items"])
                    facts[name]["has_next"] = bool(data.get("next_cursor"))
                if isinstance(data, dict) and "events" in data:
                    facts[name]["timeline_entries"] = len(data["events"])
        if i in (warmup - 1, warmup + samples // 2):
            log(f"  round {i + 1}/{warmup + samples}")
    return times, facts


def report(times: dict, facts: dict, routes) -> dict:
    base = summary(times["healthz"])["p50"]
    out = {}
    for name, group, _ in routes:
        s = summary(times[name])
        row = {"n": s["n"], "p50_ms": round(s["p50"], 2), "p95_ms": round(s["p95"], 2), "p99_ms": round(s["p99"], 2),
               "max_ms": round(s["max"], 2), "p50_x_healthz": round(s["p50"] / base, 1),
               "p95_x_healthz": round(s["p95"] / base, 1), **facts.get(name, {})}
        if group:
            row["target_p95_ms"] = TARGETS[group]
            row["meets"] = s["p95"] < TARGETS[group]
        out[name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scheduler", action="store_true", help="run the scheduled jobs in the gateway too")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the database")
    parser.add_argument("--db", default="", help="use this SQLite file instead of the generated one (a copy)")
    parser.add_argument("--root", default=str(ROOT), help="serve this checkout of the code (to measure a change)")
    parser.add_argument("--cold", action="store_true", help="do not read the database file before the run")
    parser.add_argument("--only", default="", help="comma list of route names (healthz is always measured)")
    parser.add_argument("--out", default="", help="also write the JSON here")
    args = parser.parse_args()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    path, meta = ensure(args.n, seed=args.seed, rebuild=args.rebuild, log=log)
    if args.db:
        path = Path(args.db)
    database_url = f"sqlite:///{path}"
    prepare_admin(database_url)
    warm_s = None if args.cold else round(prewarm(path), 1)
    load_before = os.getloadavg()
    gateway = ApiGateway(database_url, workers=args.workers, scheduler=args.scheduler, root=Path(args.root))
    try:
        session = requests.Session()
        answer = session.post(f"{gateway.url}/api/v1/auth/login", json={"username": USERNAME, "password": PASSWORD},
                              timeout=30)
        answer.raise_for_status()
        session.headers["Authorization"] = f"Bearer {answer.json()['token']}"
        routes = build_routes(session, gateway.url, meta, random.Random(args.seed))
        if args.only:
            wanted = {"healthz", *args.only.split(",")}
            routes = [route for route in routes if route[0] in wanted]
        log(f"measuring {len(routes)} routes x {args.samples} samples (+{args.warmup} warm-up rounds)")
        started = time.perf_counter()
        times, facts = measure(session, routes, samples=args.samples, warmup=args.warmup, log=log)
        wall = time.perf_counter() - started
    finally:
        gateway.stop()
    results = report(times, facts, routes)
    targeted = [row for row in results.values() if "meets" in row]
    out = {
        "n_payments": meta["n"], "code": str(Path(args.root).resolve()), "db": str(path),
        "db_bytes": path.stat().st_size, "db_generation_s": meta.get("generation_s"),
        "rows": meta.get("counts"), "cpus": os.cpu_count(), "workers": args.workers, "scheduler": args.scheduler,
        "prewarm_s": warm_s, "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()], "measure_wall_s": round(wall, 1),
        "healthz_p50_ms": results["healthz"]["p50_ms"],
        "filters": {"phone": meta["phone_many"], "account_big": meta["account_big"],
                    "account_typical": meta["account_typical"], "data_end_utc": meta["end"]},
        "all_targets_met": all(row["meets"] for row in targeted),
        "missed": [name for name, row in results.items() if row.get("meets") is False],
        "routes": results,
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
