"""Fault-test support: a TCP proxy a test can cut and restore (a provider or the database really down:
connection refused, open connections dropped), a real gateway process that can be killed with SIGKILL
and started again on the same port, and small helpers to post what providers post."""
from __future__ import annotations

import json
import socket
import threading

import requests

from shared.config import load_config
from shared.db import init_db
from shared.models.migrations import migrate
from tests.conftest import CALLBACK_TOKEN
from tests.gateway_process import GatewayProcess as BaseGatewayProcess
from tests.helpers import free_port


class ToggleProxy:
    """Forwards 127.0.0.1:<port> to a target port. ``cut()`` closes the listening socket and every open
    connection (callers get "connection refused", as from a stopped server); ``restore()`` listens on the
    same port again. One instance stands for Daraja, Africa's Talking or PostgreSQL."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def restore(self) -> None:
        """Listen again (idempotent)."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="toggle-proxy", daemon=True).start()

    def cut(self) -> None:
        """Stop listening and drop every open connection at once (idempotent)."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            _close(listener)
        for conn in conns:
            _close(conn)

    stop = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class GatewayProcess(BaseGatewayProcess):
    """A gateway wired to the given provider URLs, with what providers and customers send."""

    def __init__(self, *, database_url: str, daraja_url: str, at_url: str, env: dict | None = None):
        super().__init__({"DATABASE_URL": database_url, "MPESA_BASE_URL": daraja_url, "AT_BASE_URL": at_url,
                          **(env or {})}, prefix="lipa-faults-")

    # --- what providers and customers send ---------------------------------------------------------

    def callback(self, body: dict, timeout: float = 10.0) -> requests.Response:
        return requests.post(f"{self.url}/mpesa/stk/callback/{CALLBACK_TOKEN}", json=body, timeout=timeout)

    def dial(self, session: str, text: str, phone: str, timeout: float = 10.0) -> requests.Response:
        return requests.post(f"{self.url}/ussd", data={
            "sessionId": session, "serviceCode": "*384*123#", "phoneNumber": phone, "networkCode": "63902",
            "text": text}, timeout=timeout)


def open_database(url: str) -> None:
    """Bind this test process to the gateway's database (with its personal-data keys, as the gateway
    loads them, when the schema seals phone numbers) and bring the schema up to date. The process's own
    status changes (setting payments up) run no side effects: the gateway under test has its own."""
    from gateway.payments.transitions import TransitionHooks, bind_hooks
    from shared.models.keystore import install_keys

    init_db(url)
    install_keys(load_config({"LIPA_PROFILE": "local", "DATABASE_URL": url}, read_dotenv=False))
    migrate()
    bind_hooks(TransitionHooks())


def paid_callback(checkout_id: str, *, amount: int, phone: str, receipt: str) -> dict:
    """A success STK callback as Daraja posts it (tests/fixtures/stk_callback_paid.json's shape)."""
    return {"Body": {"stkCallback": {
        "MerchantRequestID": f"m-{checkout_id}", "CheckoutRequestID": checkout_id, "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": amount}, {"Name": "MpesaReceiptNumber", "Value": receipt},
            {"Name": "TransactionDate", "Value": 20261123101500}, {"Name": "PhoneNumber", "Value": int(phone)},
        ]}}}}


def dumps(body: dict) -> str:
    return json.dumps(body, separators=(",", ":"))
