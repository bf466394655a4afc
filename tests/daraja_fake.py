"""A small programmable Daraja on a real port, so the client is tested over real HTTP."""
from __future__ import annotations

import base64
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from werkzeug.serving import WSGIRequestHandler, make_server

OAUTH = "/oauth/v1/generate"
PUSH = "/mpesa/stkpush/v1/processrequest"
QUERY = "/mpesa/stkpushquery/v1/query"
INVALID_TOKEN = {"requestId": "r-404", "errorCode": "404.001.03", "errorMessage": "Invalid Access Token"}


@dataclass
class Call:
    method: str
    path: str
    query: str
    authorization: str
    body: object


@dataclass
class Reply:
    status: int
    body: object  # dict/list: JSON; str: sent as text/html
    delay: float = 0.0


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        """Keep test output clean; errors are still logged."""


class FakeDaraja:
    """Answers OAuth, STK push and STK query; scripted replies per path take precedence."""

    def __init__(self, key: str = "key", secret: str = "secret"):
        self.basic = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        self.calls: list[Call] = []
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.issued: list[str] = []
        self.valid_tokens: set[str] = set()
        self.expires_in: object = "3599"
        self.oauth_delay = 0.0
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._active = 0
        self._server = make_server("127.0.0.1", 0, self.wsgi, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        # A short poll interval: shutdown() waits up to one interval, once per test.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def queue(self, path: str, status: int, body, delay: float = 0.0) -> None:
        """The next request to ``path`` gets this reply instead of the default."""
        self.scripts[path].append(Reply(status, body, delay))

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for call in self.calls if call.path == path)

    def stop(self) -> None:
        """Wake sleeping handlers, wait for them, then close the port."""
        self.release.set()
        deadline = time.monotonic() + 5
        while self._active and time.monotonic() < deadline:
            time.sleep(0.01)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def wsgi(self, environ, start_response):
        with self._lock:
            self._active += 1
        try:
            reply = self._handle(environ)
            if reply.delay:
                self.release.wait(reply.delay)
            if isinstance(reply.body, str):
                data, ctype = reply.body.encode(), "text/html"
            else:
                data, ctype = json.dumps(reply.body).encode(), "application/json"
            start_response(f"{reply.status} X", [("Content-Type", ctype), ("Content-Length", str(len(data)))])
            return [data]
        finally:
            with self._lock:
                self._active -= 1

    def _handle(self, environ) -> Reply:
        """Record the call, then answer from the script or the default behaviour."""
        path = environ["PATH_INFO"]
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        call = Call(environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""),
                    environ.get("HTTP_AUTHORIZATION", ""), body)
        with self._lock:
            self.calls.append(call)
            scripted = self.scripts[path].popleft() if self.scripts[path] else None
        if scripted:
            return scripted
        if path == OAUTH:
            return self._oauth(call)
        if call.authorization.removeprefix("Bearer ") not in self.valid_tokens:
            return Reply(404, INVALID_TOKEN)
        if path == PUSH:
            n = self.count(PUSH)
            return Reply(200, {
                "MerchantRequestID": f"29115-{n}", "CheckoutRequestID": f"ws_CO_{n}", "ResponseCode": "0",
                "ResponseDescription": "Success. Request accepted for processing",
                "CustomerMessage": "Success. Request accepted for processing",
            })
        if path == QUERY:
            return Reply(200, {"ResponseCode": "0", "ResponseDescription": "ok", "ResultCode": "0",
                               "ResultDesc": "The service request is processed successfully."})
        return Reply(404, {"errorCode": "404.000.00", "errorMessage": "no such path"})

    def _oauth(self, call: Call) -> Reply:
        """Issue tok-1, tok-2, … to the right Basic credentials."""
        if self.oauth_delay:
            self.release.wait(self.oauth_delay)
        if call.authorization != self.basic or call.query != "grant_type=client_credentials":
            refusal = {"requestId": "r-auth", "errorCode": "400.008.01",
                       "errorMessage": "Invalid Authentication passed"}
            return Reply(400, refusal)
        with self._lock:
            token = f"tok-{len(self.issued) + 1}"
            self.issued.append(token)
            self.valid_tokens.add(token)
        return Reply(200, {"access_token": token, "expires_in": self.expires_in})
