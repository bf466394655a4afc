"""A merchant endpoint that answers one byte at a time, on a real port: the slow merchant of issue 15, for
the webhook isolation tests and bench/isolation_bench.py. Never part of a running gateway."""
from __future__ import annotations

import select
import socket
import threading

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class Trickle:
    """An endpoint that reads the request, then answers one byte every ``interval`` seconds
    (a 61-byte answer takes a minute: per-read timeouts never fire). Counts connections in flight."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.open = 0
        self.most_open = 0
        self.accepted = 0
        self.cut_off = 0  # connections the client closed before the answer was complete
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with self._lock:
            self.open += 1
            self.accepted += 1
            self.most_open = max(self.most_open, self.open)
        try:
            _read_request(conn)
            for byte in ANSWER:
                if self._client_left(conn):
                    raise ConnectionResetError("the client closed the connection")
                if self._stop.is_set():
                    return
                conn.sendall(bytes([byte]))
        except OSError:
            with self._lock:
                self.cut_off += 1
        finally:
            conn.close()
            with self._lock:
                self.open -= 1

    def _client_left(self, conn) -> bool:
        """Wait one interval, watching the socket: a client that hangs up is seen at once, not at the next
        byte, so ``open`` counts only connections the client still holds."""
        readable, _, _ = select.select([conn], [], [], self.interval)
        return bool(readable) and conn.recv(1) == b""

    def stop(self):
        self._stop.set()
        self.listener.close()


def _read_request(conn) -> None:
    """The whole request, headers and body, so closing the socket after the answer sends no reset."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += conn.recv(65536)
