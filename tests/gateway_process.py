"""A real gateway (`python run_gateway.py --no-simulators`, gunicorn) in its own process group, for the
tests that need one outside the test process: the fault tests kill it with SIGKILL and start it again on
the same port; the scale-out tests run several on one database; the desktop tests keep the GUI thread
from sharing a GIL with the server. Its environment is child_env's: no developer settings, coverage kept."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from tests.child_env import child_env
from tests.conftest import CALLBACK_TOKEN
from tests.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


class GatewayProcess:
    """The process group is its own, so ``kill9()`` ends the master and its workers at once, as a power cut
    or the OOM killer would; ``start()`` again serves the same port (the callback URL Daraja was given)."""

    def __init__(self, env: dict, *, args: tuple = (), prefix: str = "lipa-gateway-"):
        self.tmp = tempfile.TemporaryDirectory(prefix=prefix)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = child_env({"LIPA_PROFILE": "local", "MPESA_CALLBACK_TOKEN": CALLBACK_TOKEN, **env}, minimal=False)
        self.args = tuple(args)
        self.log_path = Path(self.tmp.name) / "gateway.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def launch(self) -> "GatewayProcess":
        """Start the process without waiting (starting several at once overlaps their imports)."""
        self.starts += 1
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "run_gateway.py"), "--port", str(self.port), "--no-simulators",
                 *self.args], cwd=self.tmp.name, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        return self

    def start(self, timeout: float = 40.0) -> "GatewayProcess":
        """Start (or start again) and wait until /healthz answers 200."""
        self.launch()
        wait_for(self._healthy, timeout=timeout, interval=0.1)
        return self

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"gateway exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def worker_pids(self) -> set[int]:
        """The gunicorn workers under the master (Linux /proc)."""
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return set()
        return {int(pid) for pid in text.split()}

    def kill9(self) -> None:
        """SIGKILL the whole process group: nothing gets to clean up."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful: requests drain, running jobs give their leases back), then SIGKILL whatever is
        left of the group. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def cleanup(self) -> None:
        self.stop()
        self.tmp.cleanup()
