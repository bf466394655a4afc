"""Hostile input at volume (issue 7): N generated requests per provider endpoint, every property checked.

Run: python bench/fuzz_bench.py [--examples 10000] [--database-url postgresql://…] [--endpoints ussd,sms_inbound]
     [--seed 0] [--out result.json]

The strategies and the checks are the CI test's (tests/fuzz_strategies.py, tests/fuzz_harness.py; the
test runs 150 per endpoint): structurally plausible payloads with mutated values, and garbage. Each
request goes through the real app (create_app, its error handlers, its background tasks drained after
every request) with Flask's test client, against a fresh SQLite file (or the emptied PostgreSQL database
given). STK pushes go to a stub that accepts them without HTTP. Prints one table row per endpoint: inputs
run, answers by status class, 5xx, tracebacks/ERROR records, broken properties (shape, state), inputs/s;
exit code 1 when any property broke (the first examples of each are printed).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from gateway import create_app  # noqa: E402
from shared.config import load_config  # noqa: E402
from shared.db import db, init_db  # noqa: E402
from shared.models.migrations import migrate  # noqa: E402
from shared.models import ALL_MODELS  # noqa: E402
from tests.conftest import QuietDispatcher  # noqa: E402
from tests.fuzz_harness import Harness, StubDaraja  # noqa: E402
from tests.fuzz_strategies import ENDPOINTS, TOKEN  # noqa: E402


def fresh_app(database_url: str):
    """The gateway on an empty database (PostgreSQL tables truncated), providers stubbed."""
    if database_url.startswith("postgres"):
        init_db(database_url)
        migrate()
        with db.connection_context():
            tables = ", ".join(f'"{m._meta.table_name}"' for m in ALL_MODELS)
            db.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    config = load_config({"LIPA_PROFILE": "local", "DATABASE_URL": database_url, "MPESA_CALLBACK_TOKEN": TOKEN},
                         read_dotenv=False, mpesa_base_url="http://127.0.0.1:9/unused",
                         at_base_url="http://127.0.0.1:9/unused")
    app = create_app(config, daraja=StubDaraja(), dispatcher=QuietDispatcher())
    app.testing = True
    return app


class Tally:
    """What one endpoint's run produced."""

    def __init__(self):
        self.statuses: Counter = Counter()
        self.kinds: Counter = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, kind: str, req, detail: str) -> None:
        self.kinds[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < 3:
            shown.append(f"{detail} <- {req!r}")


def run_endpoint(name: str, database_url: str, examples: int, rng_seed: int) -> dict:
    app = fresh_app(database_url)
    harness = Harness(app)
    tally = Tally()

    @seed(rng_seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(req=ENDPOINTS[name])
    def drive(req):
        status, problems = harness.run(req)
        tally.statuses[str(status)] += 1
        for kind, found in problems.items():
            tally.add(kind, req, "; ".join(found))

    started = time.perf_counter()
    drive()
    elapsed = time.perf_counter() - started
    for problem in harness.check_payments():
        tally.add("state", "(after the run)", problem)
    harness.close()
    app.extensions["lipa"].tasks.shutdown()
    n = harness.counts.get(name, 0)
    return {"endpoint": name, "inputs": n, "statuses": dict(sorted(tally.statuses.items())),
            "5xx": tally.kinds["5xx"], "tracebacks": tally.kinds["log"], "shape": tally.kinds["shape"],
            "state": tally.kinds["state"], "seconds": round(elapsed, 1), "inputs_per_s": round(n / elapsed, 1),
            "examples": tally.examples}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger().addHandler(logging.NullHandler())
    results = []
    print("| endpoint | inputs | 2xx | 4xx | 5xx | tracebacks/ERROR | shape | state | inputs/s | answers |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.endpoints.split(","):
        with tempfile.TemporaryDirectory(prefix="lipa-fuzz-") as tmp:
            url = args.database_url or f"sqlite:///{tmp}/fuzz.db"
            result = run_endpoint(name, url, args.examples, args.seed)
        results.append(result)
        s = Counter()
        for code, count in result["statuses"].items():
            s[f"{code[0]}xx"] += count
        print(f"| {name} | {result['inputs']:,} | {s.get('2xx', 0):,} | {s.get('4xx', 0):,} | {result['5xx']} | "
              f"{result['tracebacks']} | {result['shape']} | {result['state']} | {result['inputs_per_s']} | "
              f"{' '.join(f'{k}:{v}' for k, v in result['statuses'].items())} |",
              flush=True)
    broken = [r for r in results if r["5xx"] or r["tracebacks"] or r["shape"] or r["state"]]
    for result in broken:
        print(f"\n{result['endpoint']}:", json.dumps(result["examples"], indent=1)[:4000])
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
