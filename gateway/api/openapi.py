"""The OpenAPI 3.1 document of /api/v1, built as a dict (Flask-free). tests/test_openapi.py fails when a
route exists that is not described here, and fuzzes every operation with schemathesis."""
from __future__ import annotations

from shared.config import JOB_NAMES
from shared.states import PaymentStatus, RequestStatus

ROW_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
STR = {"type": "string"}
INT = {"type": "integer"}
TIME = {"type": ["string", "null"], "format": "date-time"}
PAYMENT_STATUSES = [s.value for s in PaymentStatus]


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict, optional: dict | None = None, *, closed: bool = True) -> dict:
    """A JSON object schema; closed ones refuse unknown keys (the API answers 400 to them)."""
    schema = {"type": "object", "properties": {**required, **(optional or {})}, "required": list(required)}
    if closed:
        schema["additionalProperties"] = False
    return schema


def page_of(name: str) -> dict:
    return obj({"items": {"type": "array", "items": ref(name)}, "next_cursor": {"type": ["string", "null"]}},
               closed=False)


def query(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def path_id(name: str, schema: dict = ROW_ID) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema}


CURSOR = query("cursor", STR, "next_cursor of the previous page")
LIMIT = query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "page size (default 50)")
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {**STR, "maxLength": 200},
               "description": "the same key and body replay the first answer"}
REASON_BODY = obj({}, {"reason": STR})
ERRORS = {
    "400": "Invalid input (the message names the field)", "401": "Missing, invalid or expired token",
    "403": "The caller's role may not do this", "404": "Not found", "409": "Not allowed in the current state",
    "413": "Body too large", "415": "Wrong Content-Type", "429": "Rate limited (see Retry-After)",
    "501": "Not available in this build", "502": "The provider failed",
}


def op(summary: str, *, tag: str, ok: str = "200", schema: dict | None = None, params: tuple = (),
       body: dict | None = None, body_required: bool = True, errors: str = "400 401 403", public: bool = False,
       content: dict | None = None) -> dict:
    """One operation: its parameters, JSON body, success answer and the errors it may give."""
    operation = {"summary": summary, "tags": [tag], "parameters": list(params), "responses": {
        ok: {"description": "OK", "content": content or {"application/json": {"schema": schema or {}}}},
        **{code: {"$ref": f"#/components/responses/E{code}"} for code in errors.split()},
    }}
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": body}}}
    if public:
        operation["security"] = []
    return operation


def _payments() -> dict:
    pid = path_id("payment_id")
    action = {"body": REASON_BODY, "body_required": False, "params": (pid,), "errors": "400 401 403 404 409 415",
              "tag": "payments"}
    filters = [query(n, STR, d) for n, d in (
        ("status", "comma list of statuses"), ("phone", "07…, 2547… or +2547…"), ("account", "exact account"),
        ("q", "reference or M-Pesa receipt"), ("from", "ISO date or date-time (UTC)"),
        ("to", "ISO date (inclusive) or date-time"), ("channel", "ussd, sms, api, c2b or staff"),
        ("flagged", "true or false"))]
    receipt = {"application/pdf": {"schema": {"type": "string", "format": "binary"}}, "text/plain": {"schema": STR}}
    return {
        "/payments": {
            "get": op("List payments, newest first (a merchant key: only its own)", tag="payments",
                      schema=page_of("Payment"),
                      params=(*filters, CURSOR, LIMIT)),
            "post": op("Start a payment (STK push)", tag="payments", ok="201", schema=ref("Payment"),
                       params=(IDEMPOTENCY,), body=obj({"phone": STR, "amount": INT, "account": STR}),
                       errors="400 401 403 409 415 429"),
        },
        "/payments/{payment_id}": {"get": op("A payment with its timeline, callbacks, messages and refunds "
                                             "(a merchant key: its own payment, without them)",
                                             tag="payments", schema=ref("Payment"), params=(pid,),
                                             errors="401 403 404")},
        "/payments/{payment_id}/receipt": {"get": op(
            "The customer receipt (PDF or text for thermal printers)", tag="payments", content=receipt,
            params=(pid, query("format", {"enum": ["pdf", "text"]}), query("width", {"enum": [32, 48]})),
            errors="400 401 403 404 409")},
        "/payments/{payment_id}/requery": {"post": op("Ask M-Pesa for the push's outcome now",
                                                      **{**action, "errors": "400 401 403 404 409 415 502"})},
        "/payments/{payment_id}/resend-receipt": {"post": op("Queue the receipt SMS again", ok="201", **action)},
        "/payments/{payment_id}/retry": {"post": op("A new linked attempt of a failed payment", ok="201", **action)},
        "/payments/{payment_id}/refund": {"post": op(
            "Refund (part of) a paid payment (admin)", tag="payments", ok="201", schema=ref("Refund"),
            params=(pid,), body=obj({"amount": INT, "reason": STR}), errors="400 401 403 404 409 415 501")},
        "/payments/{payment_id}/resolve": {"post": op(
            "Set a status by hand through the state machine (admin). COMPLETED needs a receipt and answers "
            "202 {verification} until M-Pesa's Transaction Status confirms it for the amount; REFUND_PENDING "
            "and REFUNDED are refused (refunds only); over LIPA_FOUR_EYES_OVER it answers 202 {approval}",
            tag="payments", schema=ref("Payment"), params=(pid,),
            body=obj({"status": {"enum": PAYMENT_STATUSES}, "reason": STR}, {"receipt": STR}),
            errors="400 401 403 404 409 415")},
        "/payments/{payment_id}/flag": {"post": op(
            "Review a fraud flag: clear (flagged false) or confirm; shown in the timeline (operator+)",
            tag="payments", schema=ref("Payment"), params=(pid,),
            body=obj({"action": {"enum": ["clear", "confirm"]}, "reason": STR}), errors="400 401 403 404 415")},
        "/approvals": {"get": op("Manual money changes waiting for a second admin (admin)", tag="payments",
                                 schema=obj({"items": {"type": "array", "items": ref("Approval")}}),
                                 errors="401 403")},
        "/approvals/{approval_id}": {"post": op(
            "Approve (carry out) or reject a pending change; the admin who asked gets 403 (admin)",
            tag="payments", schema=obj({"approval": ref("Approval")}), params=(path_id("approval_id"),),
            body=obj({"decision": {"enum": ["approve", "reject"]}, "reason": STR}),
            errors="400 401 403 404 409 415 502")},
    }


def _requests() -> dict:
    rid = path_id("request_id")
    optional = {"description": STR, "phone": STR, "expires_in": INT, "callback_url": STR,
                "email": STR}
    return {
        "/payment-requests": {
            "get": op("List payment requests, newest first (a merchant key: only its own)", tag="payment-requests",
                      schema=page_of("PaymentRequest"),
                      params=(query("status", {"enum": [s.value for s in RequestStatus]}), CURSOR, LIMIT)),
            "post": op("Open a payment request with a code customers type", tag="payment-requests", ok="201",
                       schema=ref("PaymentRequest"), params=(IDEMPOTENCY,),
                       body=obj({"amount": INT, "account": STR}, optional), errors="400 401 403 409 415 429"),
        },
        "/payment-requests/{request_id}": {"get": op("One payment request", tag="payment-requests",
                                                     schema=ref("PaymentRequest"), params=(rid,),
                                                     errors="401 403 404")},
        "/payment-requests/{request_id}/cancel": {"post": op(
            "Cancel an open payment request", tag="payment-requests", schema=ref("PaymentRequest"), params=(rid,),
            body=REASON_BODY, body_required=False, errors="400 401 403 404 409 415")},
    }


def _ops() -> dict:
    job = path_id("name", {"enum": list(JOB_NAMES)})
    statement = {"multipart/form-data": {"schema": obj({"file": {"type": "string", "format": "binary"}})},
                 "text/csv": {"schema": STR}}
    return {
        "/audit": {"get": op(
            "Every audit row, newest first: who (actor), what (action, target), when, why (reason) (admin)",
            tag="ops", schema=page_of("AuditEntry"), errors="400 401 403",
            params=(*[query(name, STR, "exact match") for name in ("actor", "action", "target_type", "target_id")],
                    query("from", STR, "ISO date or date-time (UTC)"), query("to", STR, "ISO date (inclusive) or "
                                                                                "date-time"), CURSOR, LIMIT))},
        "/stats": {"get": op("Dashboard numbers for a period (Nairobi days; default today)", tag="ops",
                             schema=ref("Stats"), params=(query("from", STR, "ISO date (Nairobi) or date-time"),
                                                          query("to", STR, "ISO date, inclusive, or date-time")))},
        "/events": {"get": op(
            "Live feed of payment events, alerts and notification changes (long-poll)", tag="ops",
            schema=obj({"items": {"type": "array", "items": ref("FeedItem")}, "next_cursor": STR}, closed=False),
            params=(query("after", STR, "a next_cursor, or 'now'; empty: from the beginning"),
                    query("wait", {"type": "number", "minimum": 0, "maximum": 25}, "seconds to wait for a change"),
                    query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "default 100")))},
        "/alerts": {"get": op("Alerts, unacknowledged first", tag="ops", schema=page_of("Alert"),
                              params=(query("acknowledged", {"enum": ["true", "false"]}), query("kind", STR),
                                      CURSOR, LIMIT))},
        "/alerts/{alert_id}/ack": {"post": op(
            "Acknowledge an alert (operator+)", tag="ops", schema=ref("Alert"), params=(path_id("alert_id"),),
            body=obj({}, {"note": STR}), body_required=False, errors="400 401 403 404 415")},
        "/alerts/acknowledge": {"post": op(
            "Acknowledge several alerts (operator+): {ids, note}; answers how many were acknowledged now", tag="ops",
            schema=obj({"acknowledged": INT}), body=obj({"ids": {"type": "array", "items": ROW_ID}}, {"note": STR}),
            errors="400 401 403 415")},
        "/notifications": {"get": op("The outbox: SMS and webhooks with delivery status", tag="ops",
                                     schema=page_of("Notification"), params=(
                                         query("status", STR), query("channel", {"enum": ["sms", "webhook", "email"]}),
                                         query("payment_id", ROW_ID), query("order", {"enum": ["newest", "failures"]}),
                                         CURSOR, LIMIT))},
        "/jobs": {"get": op("Scheduled jobs with their run statistics", tag="ops", errors="401 403 501",
                            schema=obj({"items": {"type": "array", "items": {"type": "object"}}}, closed=False))},
        "/jobs/{name}/run": {"post": op("Run a job now (operator+)", tag="ops", schema=ref("JobRun"), params=(job,),
                                        errors="401 403 404 409 501")},
        "/jobs/{name}/pause": {"post": op("Pause a job everywhere (admin)", tag="ops", params=(job,),
                                          errors="401 403 404 501")},
        "/jobs/{name}/resume": {"post": op("Resume a paused job (admin)", tag="ops", params=(job,),
                                           errors="401 403 404 501")},
        "/reconciliation/statements": {"post": {**op(
            "Upload an M-Pesa statement (CSV, up to 20 MB) and reconcile it (operator+): 201 with the run; 202 with "
            "a QUEUED run over 2,000 lines (it imports in the background: follow /reconciliation/runs/{id}); "
            "?dry_run=1 answers 200 with what the import would do and writes nothing", tag="reconciliation",
            ok="201", schema={"type": "object"}, params=(query("dry_run", {"enum": ["0", "1"]}),),
            errors="400 401 403 413 415 501"),
            "requestBody": {"required": True, "content": statement}}},
        "/reconciliation/runs": {"get": op(
            "Past reconciliation runs, newest first, with counts and progress (viewer+)", tag="reconciliation",
            schema=obj({"items": {"type": "array", "items": {"type": "object"}},
                        "next_cursor": {"type": ["string", "null"]}}, closed=False), params=(CURSOR, LIMIT), errors="400 401 403")},
        "/reconciliation/runs/{run_id}": {"get": op(
            "A reconciliation run with a page of its exceptions, open ones first", tag="reconciliation",
            schema={"type": "object"}, params=(path_id("run_id"), query("status", {"enum": ["OPEN", "RESOLVED"]}),
                                               CURSOR, LIMIT), errors="400 401 403 404 501")},
        "/reconciliation/runs/{run_id}/cancel": {"post": op(
            "Cancel a queued or importing background import (operator+): lines already matched stay; 409 "
            "not_running once it has ended", tag="reconciliation", schema={"type": "object"},
            params=(path_id("run_id"),), errors="401 403 404 409")},
        "/reconciliation/exceptions/{exception_id}/confirm": {"post": op(
            "Confirm an exception (admin): 202 {verification}; its receipt (or the one given) is checked with "
            "M-Pesa's Transaction Status before the payment completes or the money is recorded",
            tag="reconciliation", ok="202", schema=obj({"verification": ref("Verification")}),
            params=(path_id("exception_id"),), body=obj({"reason": STR}, {"receipt": STR}),
            errors="400 401 403 404 409 415")},
        "/reconciliation/exceptions/{exception_id}/resolve": {"post": op(
            "Resolve a reconciliation exception with a note (operator+)", tag="reconciliation",
            schema=ref("ReconException"), params=(path_id("exception_id"),), body=obj({"note": STR}),
            errors="400 401 403 404 415 501")},
    }


def _schemas() -> dict:
    loose = {"type": "object"}
    money = obj({"count": INT, "amount": INT})  # collected (paid in the period, net of refunds), refunded
    return {
        "Error": obj({"error": obj({"code": STR, "message": STR})}),
        "Payment": obj({"id": INT, "reference": STR, "phone": STR, "amount": INT, "account": STR,
                        "status": {"enum": PAYMENT_STATUSES}, "status_message": STR,
                        "mpesa_receipt": {"type": ["string", "null"]}, "channel": STR, "created_at": TIME,
                        "updated_at": TIME}, closed=False),
        "PaymentRequest": obj({"id": INT, "code": STR, "status": STR, "amount": {"type": ["integer", "null"]},
                               "account": STR, "expires_at": TIME}, closed=False),
        "Refund": obj({"id": INT, "payment_id": INT, "amount": INT, "status": STR}, closed=False),
        "Notification": obj({"id": INT, "channel": STR, "kind": STR, "status": STR}, closed=False),
        "Alert": obj({"id": INT, "kind": STR, "message": STR, "acknowledged": {"type": "boolean"},
                      "created_at": TIME}, closed=False),
        "FeedItem": obj({"type": {"enum": ["payment_event", "alert", "notification"]}, "id": INT, "at": TIME},
                        closed=False),
        "AuditEntry": obj({"id": INT, "actor": STR, "action": STR, "target_type": STR, "target_id": STR,
                           "reason": STR, "created_at": TIME}, closed=False),
        "JobRun": obj({"id": INT, "job": STR, "trigger": STR, "outcome": STR}, closed=False),
        "ReconException": obj({"id": INT, "kind": STR, "status": STR}, closed=False),
        "Verification": obj({"id": INT, "receipt": STR, "amount": INT, "purpose": STR,
                             "state": {"enum": ["requested", "confirmed", "refused", "error"]}, "message": STR},
                            closed=False),
        "Approval": obj({"id": INT, "action": {"enum": ["resolve", "refund"]}, "payment_id": INT, "amount": INT,
                         "state": {"enum": ["pending", "deciding", "approved", "rejected"]}, "requested_by": STR},
                        closed=False),
        "Stats": obj({"payments": loose, "collected": money, "refunded": money,
                      "success_rate": {"type": ["number", "null"]},
                      "failure_rate": {"type": ["number", "null"]}, "failures_by_result_code": {"type": "array"},
                      "callback_lag_s": loose, "notifications": loose, "pending": INT, "stuck": INT,
                      "hourly": {"type": "array"}}, closed=False),
    }


def document(server_url: str = "/api/v1") -> dict:
    """The whole document; paths are relative to the server URL."""
    login = obj({"username": STR, "password": STR})
    paths = {
        "/auth/login": {"post": op("Staff login: a bearer token for 12 hours", tag="auth", body=login,
                                   schema=obj({"token": STR, "role": STR, "expires_at": TIME}, closed=False),
                                   errors="400 401 415 429", public=True)},
        "/auth/logout": {"post": {**op("End this staff session: the token stops working at once", tag="auth",
                                       errors="401 403 429"),
                                  "responses": {"204": {"description": "Logged out"},
                                                **{c: {"$ref": f"#/components/responses/E{c}"} for c in
                                                   ("401", "403", "429")}}}},
        "/auth/password": {"post": op(
            "Change this staff member's password (12+ characters, not the username, not a common one); "
            "their other sessions end", tag="auth", body=obj({"current": STR, "new": STR}),
            schema=obj({"changed": {"type": "boolean"}, "sessions_ended": INT}), errors="400 401 403 415 429")},
        "/openapi.json": {"get": op("This document", tag="meta", errors="", public=True)},
        **_payments(), **_requests(), **_ops(),
    }
    error = {"application/json": {"schema": ref("Error")}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Lipa admin and merchant API", "version": "1",
                 "description": "Staff tokens (POST /auth/login) and merchant keys both go in "
                                "`Authorization: Bearer …`. Lists answer {items, next_cursor}."},
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
            "responses": {f"E{code}": {"description": text, "content": error} for code, text in ERRORS.items()},
        },
    }
