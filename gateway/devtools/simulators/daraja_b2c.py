"""Daraja's asynchronous APIs in the simulator: reversal, B2C payment and transaction status.

Each answers at once ``{"OriginatorConversationID", "ConversationID", "ResponseCode": "0",
"ResponseDescription": "Accept the service request successfully."}`` and, ``callback_delay`` seconds
later, posts ``{"Result": {...}}`` to the ResultURL. The outcome is set per original receipt with
``state.set_reversal_outcome(transaction_id, outcome)`` (or ``POST /simulator/reversal_outcomes
{"transaction_id", "outcome"}``; for B2C the key is the OriginatorConversationID or the PartyB phone),
otherwise chosen by the whole Amount:

| Amount | Outcome          | What the simulator does                                          |
|--------|------------------|------------------------------------------------------------------|
| 61     | already_reversed | Result ResultCode "R000001"                                      |
| 62     | invalid_id       | Result ResultCode "R000002"                                      |
| 63     | no_role          | Result ResultCode 21 (initiator lacks the role)                  |
| 64     | timeout          | posts to the QueueTimeOutURL instead (ResultType 1)              |
| 65     | no_result        | never posts                                                      |
| other  | completed        | Result ResultCode 0 with ResultParameters                        |

A reversal of a receipt this simulator issued is answered R000001 once its whole amount has been
reversed (the same reversal sent twice). A B2C request repeating an OriginatorConversationID gets the
first acceptance again and is paid once. ``GET /simulator/results`` lists the requests; faults use the
targets ``reversal``, ``b2c`` and ``transaction_status``. The queue-timeout body is this fake's guess.
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading
from dataclasses import dataclass

from flask import Flask, jsonify

from shared.timeutil import nairobi_timestamp

from . import daemon_timer, json_body, safe_post
from .daraja_rules import PHONE_RE, as_amount, new_receipt, request_id

ASYNC_ACCEPTED = "Accept the service request successfully."
DONE_DESC = "The service request is processed successfully."
RESULT_OUTCOMES: dict[str, tuple[int | str, str]] = {
    "completed": (0, DONE_DESC),
    "already_reversed": ("R000001", "The transaction has already been reversed."),
    "invalid_id": ("R000002", "The OriginalTransactionID is invalid."),
    "no_role": (21, "The initiator is not allowed to initiate this request."),
    "timeout": (1, "The request timed out in the M-Pesa queue."),
    "no_result": (0, DONE_DESC),
}
ASYNC_AMOUNT_OUTCOMES = {61: "already_reversed", 62: "invalid_id", 63: "no_role", 64: "timeout", 65: "no_result"}
PATHS = {"reversal": "/mpesa/reversal/v1/request", "b2c": "/mpesa/b2c/v3/paymentrequest",
         "transaction_status": "/mpesa/transactionstatus/v1/query"}
URL_FIELDS = ("ResultURL", "QueueTimeOutURL")
REQUIRED = {
    "reversal": ("Initiator", "SecurityCredential", "CommandID", "TransactionID", "Amount", "ReceiverParty",
                 "RecieverIdentifierType", *URL_FIELDS, "Remarks"),
    "b2c": ("OriginatorConversationID", "InitiatorName", "SecurityCredential", "CommandID", "Amount", "PartyA",
            "PartyB", "Remarks", *URL_FIELDS),
    "transaction_status": ("Initiator", "SecurityCredential", "CommandID", "TransactionID", "PartyA",
                           "IdentifierType", *URL_FIELDS, "Remarks"),
}
B2C_COMMANDS = {"BusinessPayment", "SalaryPayment", "PromotionPayment"}


def _credential_ok(value) -> bool:
    try:
        return len(base64.b64decode(str(value), validate=True)) >= 32
    except (binascii.Error, ValueError):
        return False


def _text_ok(body: dict, name: str) -> bool:
    return len(str(body.get(name) or "")) <= 100


def _checks(kind: str, body: dict) -> tuple:
    amount = as_amount(body.get("Amount"))
    common = (("SecurityCredential", _credential_ok(body["SecurityCredential"])),
              *((url, re.fullmatch(r"https?://\S+", str(body[url])) is not None) for url in URL_FIELDS),
              ("Remarks", _text_ok(body, "Remarks")))
    if kind == "reversal":
        return common + (("CommandID", body["CommandID"] == "TransactionReversal"),
                         ("Amount", amount is not None and 1 <= amount <= 250_000),
                         ("ReceiverParty", str(body["ReceiverParty"]).isdigit()),
                         ("RecieverIdentifierType", str(body["RecieverIdentifierType"]) == "11"),
                         ("Occasion", _text_ok(body, "Occasion")))
    if kind == "b2c":
        return common + (("CommandID", body["CommandID"] in B2C_COMMANDS),
                         ("Amount", amount is not None and 10 <= amount <= 250_000),
                         ("PartyA", str(body["PartyA"]).isdigit()),
                         ("PartyB", PHONE_RE.fullmatch(str(body["PartyB"])) is not None),
                         ("OriginatorConversationID", len(str(body["OriginatorConversationID"])) <= 64),
                         ("Occassion", _text_ok(body, "Occassion")))
    return common + (("CommandID", body["CommandID"] == "TransactionStatusQuery"),
                     ("PartyA", str(body["PartyA"]).isdigit()),
                     ("IdentifierType", str(body["IdentifierType"]) in ("1", "2", "4")),
                     ("Occasion", _text_ok(body, "Occasion")))


def invalid_async_field(kind: str, body: dict) -> str | None:
    """The first field Daraja would call invalid in a reversal/B2C/status body, or None."""
    missing = next((name for name in REQUIRED[kind] if body.get(name) in (None, "")), None)
    return missing or next((name for name, ok in _checks(kind, body) if not ok), None)


@dataclass
class AsyncRequest:
    """One accepted reversal, B2C or status request and what the simulator will post for it."""

    kind: str
    conversation_id: str
    originator_id: str
    original: str  # the receipt reversed or queried; the phone paid for B2C
    amount: int | None
    result_url: str
    timeout_url: str
    outcome: str
    transaction_id: str
    done: bool = False
    posts: int = 0
    timer: threading.Timer | None = None

    def summary(self) -> dict:
        return {"kind": self.kind, "ConversationID": self.conversation_id, "outcome": self.outcome,
                "OriginatorConversationID": self.originator_id, "original": self.original, "amount": self.amount,
                "TransactionID": self.transaction_id, "done": self.done, "results_posted": self.posts}


def _parameters(req: AsyncRequest) -> list[dict]:
    now = int(nairobi_timestamp())
    if req.kind == "b2c":
        values = {"TransactionAmount": req.amount, "TransactionReceipt": req.transaction_id,
                  "ReceiverPartyPublicName": f"{req.original} - Simulated Customer",
                  "TransactionCompletedDateTime": now, "B2CRecipientIsRegisteredCustomer": "Y"}
    elif req.kind == "reversal":
        values = {"Amount": float(req.amount or 0), "OriginalTransactionID": req.original, "Charge": 0.0,
                  "TransCompletedTime": now, "DebitPartyPublicName": "Lipa Simulator"}
    else:
        values = {"ReceiptNo": req.original, "TransactionStatus": "Completed", "FinalisedTime": now}
    return [{"Key": key, "Value": value} for key, value in values.items()]


def result_body(req: AsyncRequest) -> dict:
    """The documented {"Result": {...}} for the request's outcome (ResultType 1 for a queue timeout)."""
    code, desc = RESULT_OUTCOMES[req.outcome]
    result = {"ResultType": 1 if req.outcome == "timeout" else 0, "ResultCode": code, "ResultDesc": desc,
              "OriginatorConversationID": req.originator_id, "ConversationID": req.conversation_id,
              "TransactionID": req.transaction_id}
    if code == 0:
        result["ResultParameters"] = {"ResultParameter": _parameters(req)}
    result["ReferenceData"] = {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": req.timeout_url}}
    return {"Result": result}


class AsyncResultsMixin:
    """The reversal/B2C/status part of DarajaSimState (uses its lock, post, callback_delay, pushes)."""

    def _clear_async(self) -> None:
        for req in getattr(self, "async_requests", {}).values():
            req.done = True
            if req.timer:
                req.timer.cancel()
        self.async_requests: dict[str, AsyncRequest] = {}
        self.result_outcomes: dict[str, str] = {}
        self.reversed_amounts: dict[str, int] = {}

    def set_reversal_outcome(self, transaction_id, outcome: str | None) -> None:
        """Force the outcome of requests about one receipt (None clears it)."""
        if outcome is not None and outcome not in RESULT_OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; use one of {', '.join(RESULT_OUTCOMES)}")
        with self.lock:
            self.result_outcomes.pop(str(transaction_id), None)
            if outcome is not None:
                self.result_outcomes[str(transaction_id)] = outcome

    def _async_outcome(self, kind: str, body: dict, amount: int | None) -> str:
        keys = (body.get("OriginatorConversationID"), body.get("PartyB")) if kind == "b2c" else (body["TransactionID"],)
        forced = next((self.result_outcomes[str(k)] for k in keys if str(k) in self.result_outcomes), None)
        outcome = forced or ASYNC_AMOUNT_OUTCOMES.get(amount, "completed")
        if kind == "reversal" and outcome == "completed" and self._over_reversed(str(body["TransactionID"]), amount):
            return "already_reversed"
        return outcome

    def _over_reversed(self, receipt: str, amount: int) -> bool:
        """True when this reversal would take back more than the simulator's push paid; else counts it."""
        paid = next((p.amount for p in self.pushes.values() if p.receipt == receipt), None)
        total = self.reversed_amounts.get(receipt, 0) + amount
        if paid is not None and total > paid:
            return True
        self.reversed_amounts[receipt] = total
        return False

    def start_async(self, kind: str, body: dict) -> AsyncRequest:
        """Accept a valid request and schedule its Result (a repeated B2C id returns the first one)."""
        amount = as_amount(body.get("Amount"))
        with self.lock:
            if kind == "b2c":
                first = next((r for r in self.async_requests.values()
                              if r.kind == "b2c" and r.originator_id == body["OriginatorConversationID"]), None)
                if first:
                    return first
            originator = str(body["OriginatorConversationID"]) if kind == "b2c" else request_id()
            original = str(body["PartyB"] if kind == "b2c" else body["TransactionID"])
            req = AsyncRequest(kind, f"AG_{nairobi_timestamp()[:8]}_{secrets.token_hex(10)}", originator, original,
                               amount, str(body["ResultURL"]), str(body["QueueTimeOutURL"]),
                               self._async_outcome(kind, body, amount), new_receipt(self._receipts))
            self.async_requests[req.conversation_id] = req
            if req.outcome != "no_result":
                req.timer = daemon_timer(self.callback_delay, self._deliver_async, req)
        return req

    def _deliver_async(self, req: AsyncRequest) -> int:
        """Post the Result (or the queue timeout) once; returns posts made."""
        with self.lock:
            if req.done or req.outcome == "no_result":
                return 0
            req.done = True
            if req.timer:
                req.timer.cancel()
        url = req.timeout_url if req.outcome == "timeout" else req.result_url
        body = result_body(req)
        status = safe_post(self.post, url, json=body)
        with self.lock:
            req.posts += 1
            self.callbacks.append({"url": url, "body": body, "status": status})
        return 1

    def fire_async_now(self) -> int:
        """Post every scheduled Result now; returns the posts made."""
        with self.lock:
            pending = [r for r in self.async_requests.values() if not r.done]
        return sum(self._deliver_async(req) for req in pending)

    def async_log(self) -> list[dict]:
        """Every reversal, B2C and status request since the last reset, oldest first."""
        with self.lock:
            return [req.summary() for req in self.async_requests.values()]


def set_outcome_from(state, data: dict) -> None:
    """POST /simulator/reversal_outcomes {"transaction_id", "outcome"} (outcome null clears)."""
    if not data.get("transaction_id"):
        raise ValueError("give a transaction_id")
    state.set_reversal_outcome(data["transaction_id"], data.get("outcome"))


def _view(state, kind: str, precheck, error_body):
    def view():
        early = precheck(state, kind)
        if early is not None:
            return early
        body = json_body()
        if body is None:
            return error_body(400, "400.002.05", "Invalid Request Payload")
        bad = invalid_async_field(kind, body)
        if bad:
            return error_body(400, "400.002.02", f"Bad Request - Invalid {bad}")
        req = state.start_async(kind, body)
        return jsonify(OriginatorConversationID=req.originator_id, ConversationID=req.conversation_id,
                       ResponseCode="0", ResponseDescription=ASYNC_ACCEPTED)
    return view


def add_async_routes(app: Flask, state, precheck, error_body) -> None:
    """POST the three APIs (bearer and faults checked by precheck), GET /simulator/results."""
    for kind, path in PATHS.items():
        app.add_url_rule(path, f"async_{kind}", _view(state, kind, precheck, error_body), methods=["POST"])
    app.add_url_rule("/simulator/results", "sim_results", lambda: jsonify(state.async_log()), methods=["GET"])
