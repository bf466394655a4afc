"""Drive one fuzz request through the app and check the properties every provider endpoint must keep.

Properties: no 5xx; the documented answer shape (USSD: text/plain CON/END, at most 160 GSM-7
characters; SMS and Daraja: their JSON ack or a JSON error); no ERROR record and no traceback in the
log; invalid input changes no payment, payment event, refund or outgoing notification. "Invalid" is
defined honestly per endpoint: a refused request (4xx), a callback that names no payment we know, an
SMS that is not a PAY. A random USSD text may walk the menu to a payment, a C2B confirmation is money
received, a delivery report for a message we sent may move it: those are allowed to change state.
"""
from __future__ import annotations

import functools
import io
import itertools
import logging
import re
import threading

from gateway.providers.daraja.client import StkPushAccepted
from shared.db import db, write_tx
from shared.gsm import is_gsm7
from shared.models import InboxMessage, Notification, Payment, PaymentEvent, Refund

from .fuzz_strategies import KNOWN_CHECKOUTS, KNOWN_SMS_IDS, SEEDED_PHONES, FuzzRequest

PAY_STARTED = ("END Wait for the M-Pesa prompt", "END Subiri ombi la M-Pesa")
NEVER_CHANGES = {"ussd_events", "c2b_validation", "mpesa_result", "mpesa_timeout"}
DARAJA = {"stk_callback", "c2b_validation", "c2b_confirmation", "mpesa_result", "mpesa_timeout"}
PAY_WORD = re.compile(rb"(?i)(pay|lipa)")


class StubDaraja:
    """Accepts every STK push without any HTTP; nothing calls back (no stray traffic, no waiting)."""

    def __init__(self):
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def stk_push(self, *, phone, amount, account_reference, description, callback_url):
        with self._lock:
            n = next(self._ids)
        raw = {"MerchantRequestID": f"stub-{n}", "CheckoutRequestID": f"ws_CO_STUB{n:08d}", "ResponseCode": "0"}
        return StkPushAccepted(f"stub-{n}", f"ws_CO_STUB{n:08d}", "Success", raw)


class LogCapture(logging.Handler):
    """Every record at WARNING and above, from every logger (attached to the root)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self):
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger().removeHandler(self)


def seed() -> None:
    """Payments the callbacks may name (all with a CheckoutRequestID) and SMS a report may name."""
    with db.connection_context(), write_tx():
        statuses = ("PROCESSING", "PROCESSING", "COMPLETED", "EXPIRED")
        for i, (checkout, status) in enumerate(zip(KNOWN_CHECKOUTS, statuses, strict=True)):
            phone = SEEDED_PHONES[i]
            payment = Payment.create(
                reference=f"LPFUZZ{i:04d}", phone=phone, amount=500, account="FUZZ", channel="ussd",
                status=status, checkout_request_id=checkout, mpesa_receipt="FUZZRCPT01" if status == "COMPLETED"
                else None, active_phone=phone if status == "PROCESSING" else None)
            PaymentEvent.create(payment=payment, kind="transition", from_status="PENDING", to_status=status,
                                actor="fuzz-seed", reason="seeded")
        for i, sms_id in enumerate(KNOWN_SMS_IDS):
            Notification.create(channel="sms", kind="payment_completed", recipient=SEEDED_PHONES[i], body="Paid.",
                                status="SENT", provider_message_id=sms_id)


@functools.cache
def _snapshot_sql() -> tuple[str, tuple]:
    """One statement (the bench runs it twice per input): counts and latest updates of the guarded tables."""
    def table(model):
        return f'"{model._meta.table_name}"'
    latest = "COUNT(*) || '/' || COALESCE(CAST(MAX(updated_at) AS TEXT), '')"
    parts = {
        "payments": f"SELECT {latest} FROM {table(Payment)}",
        "events": f"SELECT COUNT(*) FROM {table(PaymentEvent)}",
        "notifications": f"SELECT {latest} FROM {table(Notification)} WHERE kind <> 'reply'",
        "refunds": f"SELECT {latest} FROM {table(Refund)}",
        "inbox": f"SELECT COUNT(*) FROM {table(InboxMessage)}",
    }
    return "SELECT " + ", ".join(f"CAST(({sql}) AS TEXT)" for sql in parts.values()), tuple(parts)


def snapshot() -> dict:
    """Cheap fingerprints of everything invalid input must not touch (every write path sets updated_at)."""
    sql, names = _snapshot_sql()
    return dict(zip(names, db.execute_sql(sql).fetchone(), strict=True))


def post(client, req: FuzzRequest):
    kwargs = {"data": req.body}
    if req.chunked:  # what gunicorn hands the app for Transfer-Encoding: chunked
        kwargs = {"input_stream": io.BytesIO(req.body),
                  "environ_overrides": {"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}}
    if req.content_type is not None:
        kwargs["content_type"] = req.content_type
    return client.post(req.path, **kwargs)


def check_shape(req: FuzzRequest, response) -> list[str]:
    """The answer each provider expects, or a JSON error."""
    status = response.status_code
    if status >= 500:
        return [f"status {status}"]
    if req.endpoint in ("ussd", "ussd_events"):
        text = response.get_data(as_text=True)
        if response.mimetype != "text/plain":
            return [f"USSD answered {response.mimetype}: {text[:80]!r}"]
        if req.endpoint == "ussd" and not (text[:4] in ("CON ", "END ") and len(text) <= 160 and is_gsm7(text)):
            return [f"USSD screen not CON/END, <=160, GSM-7: {text!r}"]
        return []
    if req.wrong_token and status != 404:
        return [f"wrong token answered {status}"]
    data = response.get_json(silent=True)
    if not isinstance(data, dict):
        return [f"status {status} without a JSON object: {response.get_data()[:80]!r}"]
    if status >= 400:
        error = data.get("error")
        ok = isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
        return [] if ok else [f"{status} without the error shape: {data}"]
    if status != 200:
        return [f"unexpected status {status}"]
    if req.endpoint in DARAJA:
        return [] if {"ResultCode", "ResultDesc"} <= set(data) else [f"not a Daraja ack: {data}"]
    return [] if data.get("status") in ("accepted", "duplicate") else [f"not an SMS ack: {data}"]


def check_logs(records: list[logging.LogRecord]) -> list[str]:
    """No traceback and nothing at ERROR: hostile input is a WARNING at most."""
    return [f"{r.levelname} {r.name}: {r.getMessage()[:200]}" + (" (with traceback)" if r.exc_info else "")
            for r in records if r.exc_info or r.levelno >= logging.ERROR]


def change_allowed(req: FuzzRequest, response) -> bool:
    """Whether this request may legitimately change payments, events, refunds or notifications."""
    if response.status_code != 200 or req.wrong_token or req.endpoint in NEVER_CHANGES:
        return False
    if req.endpoint == "ussd":
        return response.get_data(as_text=True).startswith(PAY_STARTED)
    if req.endpoint == "sms_inbound":
        return bool(PAY_WORD.search(req.body))
    if req.endpoint in ("stk_callback", "sms_delivery"):
        return req.known_ref
    return req.endpoint == "c2b_confirmation"


def check_state(req: FuzzRequest, response, before: dict, after: dict) -> list[str]:
    refused = response.status_code in (404, 413) or req.wrong_token
    keys = [k for k in before if k != "inbox"] + (["inbox"] if refused else [])
    if change_allowed(req, response):
        return []
    return [f"{key} changed: {before[key]} -> {after[key]}" for key in keys if before[key] != after[key]]


class Harness:
    """One app, one client, one log capture; run(request) returns the properties it broke."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self.tasks = app.extensions["lipa"].tasks
        self.capture = LogCapture()
        self.counts: dict[str, int] = {}
        seed()
        db.connect(reuse_if_open=True)  # held for the snapshots; requests on this thread reuse it

    def run(self, req: FuzzRequest) -> tuple[int, dict[str, list[str]]]:
        """(status, {"5xx"|"log"|"shape"|"state": problems}) for one request; the log capture is emptied."""
        self.counts[req.endpoint] = self.counts.get(req.endpoint, 0) + 1
        before = snapshot()
        with self.capture:
            response = post(self.client, req)
            self.tasks.drain()
        shape = check_shape(req, response)
        problems = {"5xx": [p for p in shape if p.startswith("status 5")], "log": check_logs(self.capture.records),
                    "shape": [p for p in shape if not p.startswith("status 5")],
                    "state": check_state(req, response, before, snapshot())}
        self.capture.records.clear()
        return response.status_code, {kind: found for kind, found in problems.items() if found}

    def close(self) -> None:
        self.tasks.drain()
        if not db.is_closed():
            db.close()

    def check_payments(self) -> list[str]:
        """After a run: every payment's status is where its last transition event took it."""
        problems = []
        with db.connection_context():
            for payment in Payment.select():
                last = (PaymentEvent.select().where(PaymentEvent.payment == payment, PaymentEvent.kind == "transition")
                        .order_by(PaymentEvent.id.desc()).first())
                if last is not None and last.to_status != payment.status:
                    problems.append(f"{payment.reference} is {payment.status}, last event says {last.to_status}")
                if payment.reference.startswith("LPFUZZ") and payment.amount != 500:
                    problems.append(f"{payment.reference} amount changed to {payment.amount}")
        return problems
