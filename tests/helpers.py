"""Small helpers shared by the tests."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

from tests.child_env import ROOT, child_env

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll until predicate() is truthy (for work that happens in another thread or process)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayProcess:
    """`python run_gateway.py --port P --no-simulators --no-scheduler` in a process of its own, as staff's
    desktop app meets it in real life (the GUI tests' gateway: in the test process its server threads would
    share the GIL with the GUI thread, which the real app never does). Its output goes to ``log_path``."""

    def __init__(self, env: dict, log_path: Path, timeout: float = 60.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = child_env({**env, "LIPA_PUBLIC_URL": self.url}, minimal=False)  # not a developer's own settings
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "run_gateway.py"), "--port", str(self.port), "--no-simulators",
                 "--no-scheduler"], cwd=log_path.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with NO_PROXY.open(f"{self.url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the gateway did not become healthy; its log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: gunicorn stops gracefully (long-polls answer at once, background tasks drain)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def pdf_text(data: bytes) -> str:
    """The text of a PDF as Qt writes it (fonts as glyph codes in hex strings, each font with a ToUnicode
    CMap; content streams Flate-compressed or not): the codes mapped back to characters, a line per text
    block. Enough to check what a receipt says without a PDF library."""
    objects = {int(n): body for n, body in re.findall(rb"(\d+) 0 obj(.*?)endobj", data, re.S)}
    fonts = {}
    for resources in re.findall(rb"/Font\s*<<(.*?)>>", data, re.S):
        for name, number in re.findall(rb"/([\w.+-]+)\s+(\d+) 0 R", resources):
            cmap = re.search(rb"/ToUnicode (\d+) 0 R", objects.get(int(number), b""))
            if cmap:
                fonts[name] = _to_unicode(_stream(objects[int(cmap.group(1))]))
    lines, font = [], {}
    for number in re.findall(rb"/Contents (\d+) 0 R", data):
        for block in re.findall(rb"\bBT\b(.*?)\bET\b", _stream(objects[int(number)]), re.S):
            text = ""
            for name, glyphs in re.findall(rb"/([\w.+-]+)\s+[\d.]+\s+Tf|<([0-9A-Fa-f]*)>\s*Tj", block):
                if name:
                    font = fonts.get(name, {})
                for n in range(0, len(glyphs), 4):
                    text += font.get(int(glyphs[n:n + 4], 16), "?")
            lines.append(text.replace("\t", " "))
    return "\n".join(lines)


def _stream(body: bytes) -> bytes:
    raw = re.search(rb"stream\r?\n(.*?)\r?\nendstream", body, re.S).group(1)
    return zlib.decompress(raw) if b"/FlateDecode" in body else raw


def _to_unicode(cmap: bytes) -> dict[int, str]:
    """Code -> text from a ToUnicode CMap's bfchar and bfrange entries (single and array forms)."""
    out = {}
    for code, text in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*$", _section(cmap, b"bfchar"), re.M):
        out[int(code, 16)] = bytes.fromhex(text.decode()).decode("utf-16-be")
    for low, high, target in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(<[0-9A-Fa-f]+>|\[[^\]]*\])",
                                        _section(cmap, b"bfrange")):
        low, high = int(low, 16), int(high, 16)
        if target.startswith(b"["):
            for n, text in enumerate(re.findall(rb"<([0-9A-Fa-f]+)>", target)):
                out[low + n] = bytes.fromhex(text.decode()).decode("utf-16-be")
        else:
            first = int(target[1:-1], 16)
            out.update({code: chr(first + code - low) for code in range(low, high + 1)})
    return out


def _section(cmap: bytes, name: bytes) -> bytes:
    return b"\n".join(re.findall(rb"begin" + name + rb"(.*?)end" + name, cmap, re.S))
