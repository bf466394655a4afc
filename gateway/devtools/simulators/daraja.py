"""Local Daraja (M-Pesa) simulator: a real Flask app answering in Daraja's documented shapes.

It lets the gateway run a full demo with no credentials and no internet, and lets tests walk
every path: success, refusals, duplicate, missing and late callbacks, gateway faults.

Outcome of an STK push: set per phone (``state.set_outcome(phone, outcome)`` or
``POST /simulator/outcomes {"phone": "2547...", "outcome": "..."}``), otherwise chosen by
the WHOLE amount (``Amount`` 51 exactly, not "ends in 51"):

| Amount | Outcome      | What the simulator does                                                   |
|--------|--------------|---------------------------------------------------------------------------|
| 51     | insufficient | callback ResultCode 1 "The balance is insufficient for the transaction."   |
| 52     | wrong_pin    | callback ResultCode 2001 "The initiator information is invalid."           |
| 53     | cancelled    | callback ResultCode 1032 "Request cancelled by user"                       |
| 54     | timeout      | callback ResultCode 1037 "DS timeout user cannot be reached"               |
| 55     | no_callback  | never posts; the STK query answers "0" (paid) once callback_delay passed   |
| 56     | duplicate    | posts the same success callback twice                                      |
| 57     | late         | success callback after late_delay (30 s); query says "0" after callback_delay |
| 58     | string_code  | callback ResultCode "SFC_IC0003" (a string) "Operator does not exist"      |
| 59     | still_processing | never posts; once callback_delay passed the STK query answers HTTP 200 ResultCode "4999" "The transaction is still under processing" (the customer has not answered yet) |
| other  | paid         | callback ResultCode 0 "The service request is processed successfully." + CallbackMetadata |

Callbacks go to the push's CallBackURL ``callback_delay`` seconds after acceptance; until then
the STK query answers 500.001.1001 "The transaction is being processed" and a second push to
the same phone is refused ("Unable to lock subscriber"). ``state.fire_pending_now()`` (or
``POST /simulator/fire``) posts every scheduled callback at once.

Control endpoints: ``POST /simulator/outcomes``, ``POST /simulator/faults``
``{"stk_push"|"stk_query"|"oauth": fault, "count": N}`` with fault one of spike_arrest, quota,
internal, invalid_token, garbage, slow, merchant; ``GET /simulator/requests``;
``POST /simulator/fire``; ``POST /simulator/reset`` (keeps issued tokens).

Reversal, B2C and transaction status (asynchronous Results) live in daraja_b2c.py.
"""
from __future__ import annotations

import secrets
import threading
import time

import requests
from flask import Flask, Response, jsonify, request

from . import FaultQueue, SimState, control_routes, daemon_timer, fault_response, json_body, safe_post
from .daraja_b2c import AsyncResultsMixin, add_async_routes, set_outcome_from
from .daraja_rules import (
    ACCEPTED, AMOUNT_OUTCOMES, FAULT_TARGETS, FAULTS, LOCKED, OUTCOMES, PROCESSING, SANDBOX_PASSKEY, SILENT,
    TOKEN_TTL, Push, as_amount, expected_password, invalid_push_field, invalid_query_field, new_checkout_id,
    new_receipt, request_id, stk_callback_body,
)

__all__ = ["AMOUNT_OUTCOMES", "OUTCOMES", "SANDBOX_PASSKEY", "DarajaSimState", "create_daraja_sim",
           "expected_password", "stk_callback_body"]


def error_body(status: int, code: str, message: str) -> Response:
    """Daraja's error shape: {"requestId", "errorCode", "errorMessage"}."""
    response = jsonify(requestId=request_id(), errorCode=code, errorMessage=message)
    response.status_code = status
    return response


def _render_fault(fault: str) -> Response:
    return error_body(*FAULTS[fault])


class DarajaSimState(SimState, AsyncResultsMixin):
    """Everything the Daraja simulator remembers; every method is thread-safe."""

    def __init__(self, callback_delay: float = 2.0, late_delay: float = 30.0, post=requests.post):
        self.lock = threading.RLock()
        self.callback_delay = callback_delay
        self.late_delay = late_delay
        self.post = post
        self.passkey = SANDBOX_PASSKEY
        self.clock = time.monotonic
        self.wake = threading.Event()
        self.tokens: dict[str, float] = {}
        self._receipts: set[str] = set()
        self.faults = FaultQueue(FAULT_TARGETS, FAULTS)
        self._clear()

    def _clear(self) -> None:
        self.pushes: dict[str, Push] = {}
        self.outcomes: dict[str, str] = {}
        self.faults.clear()
        self.callbacks: list[dict] = []
        self._clear_async()

    def issue_token(self) -> str:
        """A new bearer token, valid for TOKEN_TTL seconds."""
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.monotonic() + TOKEN_TTL
        return token

    def token_valid(self, token: str) -> bool:
        """True for a token this simulator issued and that has not expired."""
        with self.lock:
            expiry = self.tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def revoke_tokens(self) -> None:
        """Forget every token, so clients must refresh (tests of the refresh-once path)."""
        with self.lock:
            self.tokens.clear()

    def set_outcome(self, phone, outcome: str | None) -> None:
        """Force the outcome of pushes to one phone (None clears it)."""
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; use one of {', '.join(OUTCOMES)}")
        with self.lock:
            self.outcomes.pop(str(phone).lstrip("+"), None)
            if outcome is not None:
                self.outcomes[str(phone).lstrip("+")] = outcome

    def outcome_for(self, phone: str, amount: int) -> str:
        """The per-phone override, else the amount table, else paid."""
        with self.lock:
            return self.outcomes.get(phone) or AMOUNT_OUTCOMES.get(amount, "paid")

    def set_fault(self, target: str, fault: str, count: int = 1) -> None:
        """Make the next `count` requests to `target` (stk_push, stk_query, oauth, ...) fail with `fault`."""
        self.faults.set(target, fault, count)

    def is_decided(self, push: Push) -> bool:
        """True once the push's result is known (its callback was due or was posted)."""
        return push.done or self.clock() >= push.decided_at

    def find(self, checkout_id) -> Push | None:
        """The push with this CheckoutRequestID, if any."""
        with self.lock:
            return self.pushes.get(str(checkout_id))

    def start_push(self, body: dict) -> Push | None:
        """Register a valid push and schedule its callback; None when the phone is locked."""
        phone, amount = str(body["PhoneNumber"]), as_amount(body["Amount"])
        with self.lock:
            if any(p.phone == phone and not self.is_decided(p) for p in self.pushes.values()):
                return None
            outcome = self.outcome_for(phone, amount)
            push = Push(new_checkout_id(self.pushes), request_id(), phone, amount,
                        str(body["AccountReference"]), str(body["CallBackURL"]), outcome,
                        self.clock() + self.callback_delay)
            push.receipt = new_receipt(self._receipts) if OUTCOMES[outcome][0] == 0 else None
            self.pushes[push.checkout_id] = push
            if outcome not in SILENT:
                delay = self.late_delay if outcome == "late" else self.callback_delay
                push.timer = daemon_timer(delay, self._deliver, push)
        return push

    def _deliver(self, push: Push) -> int:
        """Post the push's callback (twice for duplicate) unless already done; returns posts made."""
        with self.lock:
            if push.done or push.outcome in SILENT:
                return 0
            push.done = True
            if push.timer:
                push.timer.cancel()
        body = stk_callback_body(push)
        times = 2 if push.outcome == "duplicate" else 1
        for _ in range(times):
            status = safe_post(self.post, push.callback_url, json=body)
            with self.lock:
                push.posts += 1
                self.callbacks.append({"url": push.callback_url, "body": body, "status": status})
        return times

    def fire_pending_now(self) -> int:
        """Decide every waiting push and post its callback now; returns the callbacks posted."""
        with self.lock:
            pending = [p for p in self.pushes.values() if not p.done]
            for push in pending:
                push.decided_at = float("-inf")
        return sum(self._deliver(push) for push in pending) + self.fire_async_now()

    def callbacks_sent(self) -> list[dict]:
        """Every callback posted so far ({url, body, status}), for tests to wait on."""
        with self.lock:
            return list(self.callbacks)

    def requests_log(self) -> list[dict]:
        """Every STK push received since the last reset, oldest first."""
        with self.lock:
            return [p.summary(self.is_decided(p)) for p in self.pushes.values()]

    def _cancel_scheduled(self) -> None:
        """The STK callbacks still to post (reset() then forgets pushes, overrides and faults, not tokens)."""
        for push in self.pushes.values():
            push.done = True
            if push.timer:
                push.timer.cancel()


def _bearer_error(state: DarajaSimState) -> Response | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer ") and state.token_valid(auth[7:].strip()):
        return None
    return error_body(404, "404.001.03", "Invalid Access Token")


def _precheck(state: DarajaSimState, target: str) -> Response | None:
    fault = fault_response(state, target, _render_fault)
    return fault if fault is not None else _bearer_error(state)


def _oauth(state: DarajaSimState):
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username:
        return error_body(400, "400.008.01", "Invalid Authentication passed")
    if request.args.get("grant_type") != "client_credentials":
        return error_body(400, "400.008.02", "Invalid grant type passed")
    return jsonify(access_token=state.issue_token(), expires_in=str(TOKEN_TTL))


def _stk_push(state: DarajaSimState):
    body = json_body()
    if body is None:
        return error_body(400, "400.002.05", "Invalid Request Payload")
    bad = invalid_push_field(body, state.passkey)
    if bad:
        return error_body(400, "400.002.02", f"Bad Request - Invalid {bad}")
    push = state.start_push(body)
    if push is None:
        return error_body(500, "500.001.1001", LOCKED)
    return jsonify(MerchantRequestID=push.merchant_id, CheckoutRequestID=push.checkout_id,
                   ResponseCode="0", ResponseDescription=ACCEPTED, CustomerMessage=ACCEPTED)


def _stk_query(state: DarajaSimState):
    body = json_body()
    if body is None:
        return error_body(400, "400.002.05", "Invalid Request Payload")
    bad = invalid_query_field(body, state.passkey)
    push = None if bad else state.find(body["CheckoutRequestID"])
    if push is None:
        return error_body(400, "400.002.02", f"Bad Request - Invalid {bad or 'CheckoutRequestID'}")
    if not state.is_decided(push):
        return error_body(500, "500.001.1001", PROCESSING)
    code, desc = OUTCOMES[push.outcome]
    return jsonify(ResponseCode="0", ResponseDescription="The service request has been accepted successsfully",
                   MerchantRequestID=push.merchant_id, CheckoutRequestID=push.checkout_id,
                   ResultCode=str(code), ResultDesc=desc)


def _add_api_routes(app: Flask, state: DarajaSimState) -> None:
    @app.get("/oauth/v1/generate")
    def oauth():
        fault = fault_response(state, "oauth", _render_fault)
        return fault if fault is not None else _oauth(state)

    @app.post("/mpesa/stkpush/v1/processrequest")
    def stk_push():
        early = _precheck(state, "stk_push")
        return early if early is not None else _stk_push(state)

    @app.post("/mpesa/stkpushquery/v1/query")
    def stk_query():
        early = _precheck(state, "stk_query")
        return early if early is not None else _stk_query(state)


def _set_outcome(state: DarajaSimState, data: dict) -> None:
    if not data.get("phone"):
        raise ValueError("give a phone")
    state.set_outcome(data["phone"], data.get("outcome"))


def _set_faults(state: DarajaSimState, data: dict) -> None:
    targets = [t for t in FAULT_TARGETS if t in data]
    if not targets:
        raise ValueError(f"name one of {FAULT_TARGETS}")
    for target in targets:
        state.set_fault(target, data[target], data.get("count", 1))


def create_daraja_sim(*, callback_delay: float = 2.0, late_delay: float = 30.0, post=requests.post) -> Flask:
    """Build the Daraja fake (state in app.extensions["daraja_sim"]) so demos and tests need no Safaricom."""
    app = Flask(__name__)
    state = DarajaSimState(callback_delay, late_delay, post)
    app.extensions["daraja_sim"] = state
    _add_api_routes(app, state)
    add_async_routes(app, state, _precheck, error_body)
    control_routes(app, state, {
        "outcomes": lambda data: _set_outcome(state, data),
        "faults": lambda data: _set_faults(state, data),
        "reversal_outcomes": lambda data: set_outcome_from(state, data),
    }, listing=("requests", lambda args: state.requests_log()))
    return app
