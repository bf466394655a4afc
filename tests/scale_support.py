"""Scale-out test support: real gateway processes (`run_gateway.py` in subprocesses) sharing one database,
and the provider simulators in the test process over HTTP, counting and (on demand) slowing requests."""
from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import WSGIRequestHandler, make_server

from gateway.devtools.simulators.africastalking import create_at_sim
from gateway.devtools.simulators.daraja import create_daraja_sim
from shared.privacy import crypto
from shared.db import db, init_db
from shared.models.migrations import migrate
from shared.models import ALL_MODELS
from tests.conftest import DATA_KEY, LOOKUP_KEY, PG_URL
from tests.gateway_process import GatewayProcess as BaseGatewayProcess
from tests.helpers import wait_for

OAUTH = "/daraja/oauth/v1/generate"
STK_QUERY = "/daraja/mpesa/stkpushquery/v1/query"
AT_SEND = "/at/version1/messaging"


def fresh_database(tmp_dir: Path) -> str:
    """A migrated, empty database: a new SQLite file, or the PostgreSQL test database emptied. The test
    process reads it with the same personal-data keys as the gateways (they come from the environment)."""
    url = PG_URL or f"sqlite:///{tmp_dir}/scale.db"
    init_db(url)
    crypto.use_keys((DATA_KEY,), LOOKUP_KEY)
    migrate()
    if PG_URL:
        with db.connection_context():
            tables = ", ".join(f'"{m._meta.table_name}"' for m in ALL_MODELS)
            db.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    return url


class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args) -> None:  # noqa: A002 - werkzeug's signature
        pass


class Simulators:
    """Daraja at /daraja and Africa's Talking at /at on one threaded server, with a count of the requests
    per path (``hits``) and a per-path delay (``delays``) a test sets to make work overlap."""

    def __init__(self):
        daraja_app = create_daraja_sim(callback_delay=0.05)
        at_app = create_at_sim()
        self.daraja = daraja_app.extensions["daraja_sim"]
        self.at = at_app.extensions["at_sim"]
        self.hits: Counter = Counter()
        self.delays: dict[str, float] = {}
        self._lock = threading.Lock()
        self._wsgi = DispatcherMiddleware(_not_found, {"/daraja": daraja_app, "/at": at_app})
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.daraja_url, self.at_url = f"{self.url}/daraja", f"{self.url}/at"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _app(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        with self._lock:
            self.hits[path] += 1
        delay = self.delays.get(path, 0)
        if delay:
            time.sleep(delay)
        return self._wsgi(environ, start_response)

    def stop(self) -> None:
        self.daraja.close()
        self.at.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _not_found(environ, start_response):
    start_response("404 NOT FOUND", [("Content-Type", "text/plain")])
    return [b"not found"]


class GatewayProcess(BaseGatewayProcess):
    """A gateway wired to the test's simulators, with ``--workers N``; launched at once (see wait_ready)."""

    def __init__(self, database_url: str, sims: Simulators, *, workers: int = 1, env: dict | None = None):
        super().__init__({"DATABASE_URL": database_url, "MPESA_BASE_URL": sims.daraja_url,
                          "AT_BASE_URL": sims.at_url, "LIPA_DATA_KEY": DATA_KEY, "LIPA_LOOKUP_KEY": LOOKUP_KEY,
                          **(env or {})}, args=("--workers", str(workers)), prefix="lipa-scale-")
        self.workers = workers
        self.launch()

    def wait_ready(self, timeout: float = 40.0) -> "GatewayProcess":
        """Healthy, and every gunicorn worker forked (its pid is the lease owner's and the claimer's)."""
        wait_for(lambda: self._healthy() and len(self.worker_pids()) == self.workers, timeout=timeout,
                 interval=0.1)
        return self


def start_gateways(database_url: str, sims: Simulators, count: int = 2, **kwargs) -> list[GatewayProcess]:
    """Start them all at once (the slow part is each one's imports), then wait until each is ready."""
    gateways = [GatewayProcess(database_url, sims, **kwargs) for _ in range(count)]
    try:
        for gateway in gateways:
            gateway.wait_ready()
    except BaseException:
        for gateway in gateways:
            gateway.cleanup()
        raise
    return gateways


def pid_of(worker: str | None) -> int | None:
    """The pid in a lease owner / claimer id ``host:pid[:object]``."""
    if not worker:
        return None
    return int(worker.split(":")[1])


def dial(url: str, session: str, text: str, phone: str) -> str:
    """One USSD hop, as Africa's Talking posts it."""
    response = requests.post(f"{url}/ussd", data={"sessionId": session, "serviceCode": "*384*123#",
                                                 "phoneNumber": phone, "networkCode": "63902", "text": text},
                             timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def text_in(url: str, phone: str, text: str, at_id: str) -> None:
    """One inbound SMS, as Africa's Talking posts it."""
    response = requests.post(f"{url}/sms/inbound", data={
        "from": phone, "to": "22384", "text": text, "id": at_id, "date": "2026-11-23 10:00:00",
        "linkId": "", "networkCode": "63902"}, timeout=10)
    assert response.status_code == 200, response.text
