"""The admin API client: typed answers, typed errors, and retries only where a retry cannot do anything twice.

Qt-free and blocking, so the GUI calls it from worker threads and the tests call it directly. Each thread
gets its own ``requests.Session`` unless one is injected (a transport tests can replace).
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests

from .models import Page, Payment, PaymentDetail, PaymentFilters, Session

RETRY_STATUSES = (502, 503, 504)


class ClientError(Exception):
    """Anything the GUI should show the staff member instead of crashing."""


class ApiError(ClientError):
    """The gateway answered with ``{"error": {"code", "message"}}`` (or another non-2xx answer)."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after  # seconds, from a 429's Retry-After header

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r})"


class ConnectionLost(ClientError):
    """The gateway could not be reached (refused, reset, DNS, timeout): the GUI shows its banner.

    ``unsent`` is True when the request surely never reached the gateway (no connection was made), so an
    action can be reported as "not sent"; a connection that broke after the request went out may have done it.
    """

    def __init__(self, message: str, *, unsent: bool = False):
        super().__init__(message)
        self.unsent = unsent


def never_sent(exc: requests.RequestException) -> bool:
    """No connection was made (refused, DNS, connect timeout): the gateway cannot have acted on the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and type(reason).__name__ in ("NewConnectionError",
                                                                                   "NameResolutionError")


def not_done_text(exc: ConnectionLost, doing: str) -> str:
    """What staff are told when an action met a lost connection: never that it was done."""
    if exc.unsent:
        return (f"Not sent: {doing} — {exc} Nothing was done on the gateway; try again once the connection "
                "is back.")
    return (f"{doing} may not have been done: the connection broke before the gateway answered ({exc}). Check "
            "the payment once the connection is back before trying again.")


def _seconds(text: str | None) -> float | None:
    """Retry-After in seconds (the gateway sends whole seconds; an HTTP date is not used)."""
    try:
        return max(float(text), 0.0) if text else None
    except ValueError:
        return None


class ApiClient:
    """One gateway, one staff session; every method is one API call (or one page walk)."""

    def __init__(self, base_url: str, *, session: requests.Session | None = None, timeout: float = 10,
                 retries: int = 2, backoff: float = 0.25):
        self.base_url = base_url.rstrip("/")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.session_info: Session | None = None
        self._injected = session
        self._local = threading.local()
        self._own_sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    # --- plumbing ------------------------------------------------------------------------------------------

    @property
    def role(self) -> str:
        return self.session_info.role if self.session_info else ""

    @property
    def username(self) -> str:
        return self.session_info.username if self.session_info else ""

    def _http(self) -> requests.Session:
        """The injected session, or this thread's own (requests sessions are not meant to be shared)."""
        if self._injected is not None:
            return self._injected
        if getattr(self._local, "http", None) is None:
            self._local.http = requests.Session()
            with self._lock:
                self._own_sessions.append(self._local.http)
        return self._local.http

    def close(self) -> None:
        """Close the connections this client opened (never an injected session)."""
        with self._lock:
            sessions, self._own_sessions = self._own_sessions, []
        for http in sessions:
            http.close()

    def sleep(self, seconds: float) -> None:
        """Wait before a retry; tests replace it."""
        time.sleep(seconds)

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter, capped at 5 s."""
        return random.uniform(0, min(5.0, self.backoff * 2**attempt))

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.session_info.token}"} if self.session_info else {}

    def request(self, method: str, path: str, *, params=None, json=None, raw: bool = False, retries=None,
                timeout=None, **kwargs) -> Any:
        """One call: GETs are retried on connection loss and 502/503/504, other methods never."""
        attempts = 1 + ((self.retries if retries is None else retries) if method == "GET" else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._http().request(method, self.base_url + path, params=params, json=json,
                                                headers=self._headers(), timeout=timeout or self.timeout, **kwargs)
            except requests.RequestException as exc:
                if last:
                    raise ConnectionLost(f"Cannot reach the gateway at {self.base_url} "
                                         f"({type(exc).__name__}).", unsent=never_sent(exc)) from exc
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    return self._answer(response, raw)
            self.sleep(self.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _answer(response: requests.Response, raw: bool) -> Any:
        """The body of a 2xx answer; ApiError for anything else."""
        if response.ok:
            return response.content if raw else response.json()
        try:
            error = response.json()["error"]
            code, message = str(error.get("code", "error")), str(error.get("message", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            code, message = f"http_{response.status_code}", response.text[:200] or response.reason or ""
        raise ApiError(response.status_code, code, message or f"HTTP {response.status_code}",
                       retry_after=_seconds(response.headers.get("Retry-After")))

    def get(self, path: str, **params) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v not in (None, "")})

    def post(self, path: str, body: dict | None = None) -> Any:
        return self.request("POST", path, json=body)

    # --- session and payments ------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> Session:
        """Exchange credentials for a token kept by this client."""
        self.session_info = None
        self.session_info = Session.from_json(self.post("/api/v1/auth/login",
                                                        {"username": username, "password": password}))
        return self.session_info

    def logout(self) -> None:
        """End this session on the gateway too (its token stops working at once), then forget it. Never
        retried, and forgotten even when the gateway cannot be reached (the idle timeout ends it there)."""
        if self.session_info is None:
            return
        try:
            self.request("POST", "/api/v1/auth/logout", raw=True, retries=0, timeout=min(self.timeout, 5))
        finally:
            self.session_info = None

    def ping(self) -> dict:
        """The health check, with no retries: the connection banner retries on its own clock."""
        return self.request("GET", "/healthz", retries=0, timeout=min(self.timeout, 5))

    def payments(self, filters: PaymentFilters | dict | None = None, cursor: str | None = None,
                 limit: int = 50) -> Page[Payment]:
        """One page of payments, newest first."""
        params = filters.to_params() if isinstance(filters, PaymentFilters) else dict(filters or {})
        body = self.get("/api/v1/payments", **params, cursor=cursor, limit=limit)
        return Page([Payment.from_json(item) for item in body["items"]], body.get("next_cursor"))

    def iter_payments(self, filters=None, page_size: int = 200) -> Iterator[Payment]:
        """Every payment matching the filters, page by page (for exports)."""
        cursor = None
        while True:
            page = self.payments(filters, cursor, page_size)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def payment(self, payment_id: int) -> PaymentDetail:
        """One payment with its timeline, callbacks, notifications and refunds."""
        return PaymentDetail.from_json(self.get(f"/api/v1/payments/{int(payment_id)}"))

    def _action(self, payment_id: int, action: str, body: dict | None = None) -> Any:
        return self.post(f"/api/v1/payments/{int(payment_id)}/{action}", body)

    def requery(self, payment_id: int, reason: str = "") -> dict:
        """Ask M-Pesa now; ``{"payment", "query", "applied"}`` with ``payment`` as a Payment."""
        body = self._action(payment_id, "requery", {"reason": reason} if reason else None)
        return {**body, "payment": Payment.from_json(body["payment"])}

    def resend_receipt(self, payment_id: int, reason: str = "") -> dict:
        """Queue the receipt SMS again; ``{"payment", "notification"}``."""
        body = self._action(payment_id, "resend-receipt", {"reason": reason} if reason else None)
        return {**body, "payment": Payment.from_json(body["payment"])}

    def retry(self, payment_id: int, reason: str = "") -> Payment:
        """A new payment linked to a failed one."""
        return Payment.from_json(self._action(payment_id, "retry", {"reason": reason} if reason else None))

    def refund(self, payment_id: int, amount: int, reason: str) -> dict:
        """Start a refund (admin); the refund row as JSON, or ``{"approval": …}`` when a second admin must
        approve it first (over LIPA_FOUR_EYES_OVER)."""
        return self._action(payment_id, "refund", {"amount": int(amount), "reason": reason})

    def resolve(self, payment_id: int, status: str, reason: str, receipt: str = "") -> dict:
        """Set a status by hand through the state machine (admin): ``{"payment": Payment}`` when done now;
        ``{"verification": …}`` when the receipt is being checked with M-Pesa first (COMPLETED needs one), or
        ``{"approval": …}`` when a second admin must approve (over LIPA_FOUR_EYES_OVER)."""
        body = {"status": status, "reason": reason, **({"receipt": receipt} if receipt else {})}
        answer = self._action(payment_id, "resolve", body)
        return answer if "verification" in answer or "approval" in answer else {"payment": Payment.from_json(answer)}

    def receipt(self, payment_id: int, fmt: str = "pdf", width: int = 32, *, preview: bool = False) -> bytes:
        """The customer receipt as PDF or thermal-printer text (each print after the first says COPY); a
        preview is not counted as a print."""
        params = {"format": fmt, "width": width, **({"preview": 1} if preview else {})}
        return self.request("GET", f"/api/v1/payments/{int(payment_id)}/receipt", params=params, raw=True,
                            retries=0)

    # --- operations ----------------------------------------------------------------------------------------

    def stats(self, date_from: str | None = None, date_to: str | None = None) -> dict:
        """The dashboard numbers for a period (today in Nairobi by default)."""
        return self.get("/api/v1/stats", **{"from": date_from, "to": date_to})

    def events(self, after: str | None = None, wait: float = 0, limit: int | None = None) -> Page[dict]:
        """The live feed after a cursor (or ``"now"``), long-polling up to ``wait`` seconds."""
        body = self.request("GET", "/api/v1/events", timeout=self.timeout + wait,
                            params={k: v for k, v in {"after": after, "wait": wait, "limit": limit}.items() if v})
        return Page(body["items"], body.get("next_cursor"))

    def _page(self, path: str, **params) -> Page[dict]:
        body = self.get(path, **params)
        counts = {key: value for key, value in body.items() if key not in ("items", "next_cursor")}
        return Page(body["items"], body.get("next_cursor"), counts)

    def alerts(self, acknowledged: bool | None = None, kind: str | None = None, cursor: str | None = None,
               limit: int | None = None) -> Page[dict]:
        """Alerts, unacknowledged first."""
        ack = None if acknowledged is None else str(acknowledged).lower()
        return self._page("/api/v1/alerts", acknowledged=ack, kind=kind, cursor=cursor, limit=limit)

    def ack_alerts(self, ids: list[int], note: str = "") -> dict:
        """Acknowledge several alerts in one call; {"acknowledged": n}."""
        body = {"ids": [int(i) for i in ids], **({"note": note} if note else {})}
        return self.post("/api/v1/alerts/acknowledge", body)

    def ack_alert(self, alert_id: int, note: str = "") -> dict:
        return self.post(f"/api/v1/alerts/{int(alert_id)}/ack", {"note": note} if note else None)

    def notifications(self, status: str | None = None, channel: str | None = None, payment_id: int | None = None,
                      order: str | None = None, cursor: str | None = None, limit: int | None = None) -> Page[dict]:
        """The notification outbox, newest first (or failures first with order="failures")."""
        return self._page("/api/v1/notifications", status=status, channel=channel, payment_id=payment_id,
                          order=order, cursor=cursor, limit=limit)

    def jobs(self) -> list[dict]:
        return self.get("/api/v1/jobs")["items"]

    def run_job(self, name: str) -> dict:
        return self.post(f"/api/v1/jobs/{name}/run")

    def pause_job(self, name: str) -> dict:
        return self.post(f"/api/v1/jobs/{name}/pause")

    def resume_job(self, name: str) -> dict:
        return self.post(f"/api/v1/jobs/{name}/resume")

    def upload_statement(self, data: bytes, filename: str, *, dry_run: bool = False) -> dict:
        """Import an M-Pesa statement CSV and reconcile it; the run summary (a large file answers at once with a
        QUEUED run that imports in the background: follow it with reconciliation_run). ``dry_run`` previews
        what the import would do and writes nothing."""
        return self.request("POST", "/api/v1/reconciliation/statements", params={"dry_run": 1} if dry_run else None,
                            files={"file": (filename, data, "text/csv")}, timeout=max(self.timeout, 120), retries=0)

    def reconciliation_runs(self, cursor: str | None = None, limit: int = 50) -> dict:
        """Past runs, newest first (``items``, ``next_cursor``)."""
        return self.get("/api/v1/reconciliation/runs", cursor=cursor, limit=limit)

    def reconciliation_run(self, run_id: int, status: str | None = None, cursor: str | None = None) -> dict:
        """A run's summary (``run``) and a page of its exceptions (``items``, ``next_cursor``)."""
        return self.get(f"/api/v1/reconciliation/runs/{int(run_id)}", status=status, cursor=cursor)

    def cancel_import(self, run_id: int) -> dict:
        """Stop a background import (operator+): the run summary, CANCELLED; the lines matched so far stay. A
        run that has ended already is an ApiError 409 ``not_running``."""
        return self.post(f"/api/v1/reconciliation/runs/{int(run_id)}/cancel")

    def resolve_exception(self, exception_id: int, note: str) -> dict:
        return self.post(f"/api/v1/reconciliation/exceptions/{int(exception_id)}/resolve", {"note": note})
