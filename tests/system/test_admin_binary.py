"""The one-file build of the desktop app (python packaging/build_admin.py) starts and saves its screens.

The build takes about a minute and 85 MB, so it is not part of the normal run: this test smoke-tests
dist/lipa-admin only when it exists (CI or a release builds it first), and is skipped otherwise.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import add_staff, seed

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parents[2]


def binary_path() -> Path:
    """Where packaging/build_admin.py puts the app (the same rule as its binary_path)."""
    return ROOT / "dist" / ("lipa-admin.exe" if sys.platform == "win32" else "lipa-admin")


@pytest.mark.skipif(not binary_path().exists(), reason="no dist/lipa-admin: run python packaging/build_admin.py")
def test_the_built_binary_starts_offscreen_and_saves_screenshots(live_process, tmp_path):
    staff = add_staff()
    seed(5)
    seed(status="COMPLETED", mpesa_receipt="QK1BIN")  # the detail screenshot opens a paid payment
    out = tmp_path / "shots"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PYTHONPATH", None)  # the binary carries its own copy of the app, not this checkout
    result = subprocess.run([str(binary_path()), "--gateway-url", live_process.url, "--username", "admin",
                             "--password", staff["admin"], "--screenshot", str(out)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    shots = sorted(out.glob("*.png"))
    assert "01-payments.png" in [p.name for p in shots] and len(shots) >= 5
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and p.stat().st_size > 5000 for p in shots)
