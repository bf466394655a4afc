"""Environments for the child processes the tests start (`run_gateway.py …`)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child_env(values: dict | None = None, *, minimal: bool = True) -> dict:
    """``values`` on a clean environment (only PATH and PYTHONPATH), plus coverage's own variables when the
    run measures coverage: coverage starts itself in a child python only if COVERAGE_PROCESS_CONFIG is
    inherited (setup.cfg, `[run] patch = subprocess`). ``minimal=False`` keeps the rest of os.environ
    except the gateway's own settings, for commands that need e.g. HOME or QT_QPA_PLATFORM."""
    if minimal:
        base = {"PATH": "/usr/bin:/bin"}
    else:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("LIPA_", "MPESA_", "AT_", "DATABASE_"))}
    coverage = {k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")}
    return {**base, **coverage, "PYTHONPATH": str(ROOT), **(values or {})}


def run_gateway(args: list[str], cwd, env: dict, *, timeout: float = 60, stdin: str | None = None):
    """`python run_gateway.py ARGS` to completion; the CompletedProcess with text output."""
    return subprocess.run([sys.executable, str(ROOT / "run_gateway.py"), *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, text=True, timeout=timeout)
