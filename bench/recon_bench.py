"""Statement reconciliation speed: import_statement on N lines against N matching payments.

Run: python bench/recon_bench.py [--lines 100000] [--fuzzy 0.0] [--repeat 1] [--background]
                                 [--database-url postgresql://…]

Generates a one-day statement and its payments (bench/recon_data.py) into a fresh database (a temporary
SQLite file unless --database-url names an empty PostgreSQL database), then measures in the same run:
  1. floor: parse the CSV and bulk-insert the same number of bare statement lines (one transaction,
     executemany), with no matching at all;
  2. import: import_statement() on the same bytes: parse, match, write lines, settle every payment with its
     event, exceptions, counts (with --background: as the API imports a large file, stored, then reconciled
     in chunks of background.CHUNK lines, one transaction each, with its progress recorded);
and prints one JSON line: lines, seconds, lines_per_s, floor_seconds and ratio = seconds / floor_seconds (the
cost of matching and settling over just reading and storing the file). With --repeat, the best of each.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.recon_data import insert_payments, make_dataset  # noqa: E402
from gateway.app import build_hooks  # noqa: E402
from gateway.payments.transitions import bind_hooks  # noqa: E402
from shared.config import load_config  # noqa: E402
from gateway.reconciliation import background, service, statement  # noqa: E402
from shared.privacy import crypto  # noqa: E402
from shared.db import db, init_db, is_sqlite  # noqa: E402
from shared.models.migrations import migrate  # noqa: E402
from shared.models import ALL_MODELS, StatementImport, StatementLine  # noqa: E402


def fresh_database(url: str) -> None:
    """Bind and migrate; empty every table (PostgreSQL) so each round starts alike."""
    init_db(url)
    crypto.use_keys([crypto.new_data_key()], crypto.new_lookup_key())  # throwaway personal-data keys
    migrate()
    if not is_sqlite():
        with db.connection_context():
            tables = ", ".join(f'"{m._meta.table_name}"' for m in ALL_MODELS)
            db.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


def floor(data: bytes) -> float:
    """Parse, then insert the lines bare (no payment, no matching) in one transaction; seconds."""
    started = time.perf_counter()
    parsed = statement.parse(data)
    with db.atomic():
        imp = StatementImport.create(sha256="floor", filename="floor.csv")
        rows = [(imp.id, line.line_no, line.receipt, line.completed_at, line.details, line.amount, line.account,
                 line.other_party, None, "UNMATCHED") for line in parsed.lines]
        service._insert_rows(StatementLine, service.LINE_FIELDS, rows)
    elapsed = time.perf_counter() - started
    with db.atomic():  # leave no known receipts behind for the real import
        StatementLine.delete().execute()
        StatementImport.delete().execute()
    return elapsed


def one_round(url: str, data, args) -> tuple[float, float, dict]:
    fresh_database(url)
    bind_hooks(build_hooks(load_config({"LIPA_PROFILE": "local", "DATABASE_URL": url})))  # as create_app wires them
    with db.connection_context():
        insert_payments(data.payments)
        floor_s = floor(data.csv_bytes)
        started = time.perf_counter()
        if args.background:  # as the API does above BACKGROUND_LINES: queued, then reconciled in chunks
            imp, later = background.upload(data.csv_bytes, filename="bench.csv", uploaded_by="bench")
            if later:
                background.run_import(imp.id)
        else:
            imp = service.import_statement(data.csv_bytes, filename="bench.csv", uploaded_by="bench")
        seconds = time.perf_counter() - started
        summary = service.run_summary(imp.id)
    return seconds, floor_s, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--fuzzy", type=float, default=0.0, help="share of lines matched without a receipt")
    parser.add_argument("--missed", type=float, default=0.0, help="share whose payment is still PROCESSING")
    parser.add_argument("--unknown", type=float, default=0.0, help="share Lipa never recorded")
    parser.add_argument("--extra", type=int, default=0, help="payments missing from the statement")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--background", action="store_true",
                        help="import as the API does a large file: queued, then in chunks of background.CHUNK")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    data = make_dataset(args.lines, fuzzy_share=args.fuzzy, missed_share=args.missed,
                        unknown_share=args.unknown, extra=args.extra)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="lipa-recon-") as tmp:
        for i in range(args.repeat):
            url = args.database_url or f"sqlite:///{tmp}/recon{i}.db"
            rounds.append(one_round(url, data, args))
    seconds = min(r[0] for r in rounds)
    floor_s = min(r[1] for r in rounds)
    summary = rounds[-1][2]
    print(json.dumps({
        "bench": "recon", "mode": "background" if args.background else "one transaction", "database": "sqlite" if not args.database_url else "postgresql",
        "lines": args.lines, "payments": len(data.payments), "seconds": round(seconds, 3),
        "lines_per_s": round(args.lines / seconds), "floor_seconds": round(floor_s, 3),
        "ratio": round(seconds / floor_s, 2), "matched": summary["matched"],
        "lines_by_match": summary["lines_by_match"], "exceptions": summary["exceptions"],
        "rounds": args.repeat, "load_avg_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
