"""Both simulators behind one threaded werkzeug server on a daemon thread: Daraja at /daraja,
Africa's Talking at /at, and the SMTP sink's mailbox at /mail (its SMTP side on a port of its own, at
``smtp_url``). `python run_gateway.py` starts it for the offline demo; tests use it too."""
from __future__ import annotations

import json
import logging
import threading

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import WSGIRequestHandler, make_server

from .africastalking import ATSimState, create_at_sim
from .daraja import DarajaSimState, create_daraja_sim
from .smtp_sink import MailSink, SmtpSink, create_mail_sim

log = logging.getLogger("lipa.simulators")
POLL_S = 0.01  # how soon stop() is noticed: the tests start and stop a server per test


class _QuietHandler(WSGIRequestHandler):
    """Request lines at DEBUG, so the demo's log shows the gateway rather than the fakes."""

    def log(self, type: str, message: str, *args) -> None:  # noqa: A002 - werkzeug's signature
        log.log(logging.WARNING if type == "error" else logging.DEBUG, message, *args)


def _index(environ, start_response):
    """What the root answers: where each fake lives (404 for anything else)."""
    found = environ.get("PATH_INFO", "/") in ("", "/")
    body = json.dumps({"daraja": "/daraja", "at": "/at", "mail": "/mail"} if found else {"error": "not found"}).encode()
    start_response("200 OK" if found else "404 NOT FOUND",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class SimulatorServer:
    """The Daraja and Africa's Talking fakes on one port, and the SMTP sink; stop() (or a with-block) shuts
    them down. ``mail=False`` leaves the SMTP sink out."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, callback_delay: float = 2.0,
                 late_delay: float = 30.0, at_delivery_url: str | None = None, delivery_delay: float = 1.0,
                 mail: bool = True):
        daraja_app = create_daraja_sim(callback_delay=callback_delay, late_delay=late_delay)
        at_app = create_at_sim(delivery_url=at_delivery_url, delivery_delay=delivery_delay)
        self.daraja: DarajaSimState = daraja_app.extensions["daraja_sim"]
        self.at: ATSimState = at_app.extensions["at_sim"]
        self._smtp = SmtpSink(host) if mail else None
        self.mail: MailSink = self._smtp.sink if self._smtp else MailSink()
        wsgi = DispatcherMiddleware(_index, {"/daraja": daraja_app, "/at": at_app, "/mail": create_mail_sim(self.mail)})
        self._server = make_server(host, port, wsgi, threaded=True, request_handler=_QuietHandler)
        self.host = host
        self.port: int = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self.daraja_url = f"{self.url}/daraja"
        self.at_url = f"{self.url}/at"
        self.mail_url = f"{self.url}/mail"
        self.smtp_url = self._smtp.url if self._smtp else ""
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": POLL_S},
                                        name="lipa-simulators", daemon=True)
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> "SimulatorServer":
        """Serve on the daemon thread (and the SMTP sink on its own); returns self."""
        if self._smtp is not None:
            self._smtp.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Cancel pending callbacks, stop serving and close the socket (safe to call twice)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self.daraja.close()
        self.at.close()
        if self._smtp is not None:
            self._smtp.stop()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> "SimulatorServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_simulators(host: str = "127.0.0.1", port: int = 0, *, callback_delay: float = 2.0,
                     at_delivery_url: str | None = None, late_delay: float = 30.0,
                     delivery_delay: float = 1.0) -> SimulatorServer:
    """Start both fakes on one port (0 = any free one) so the gateway runs with no credentials or internet."""
    server = SimulatorServer(host, port, callback_delay=callback_delay, late_delay=late_delay,
                             at_delivery_url=at_delivery_url, delivery_delay=delivery_delay)
    log.debug("simulators listening on %s", server.url)
    return server.start()
