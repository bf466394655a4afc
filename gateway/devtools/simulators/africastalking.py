"""Local Africa's Talking SMS simulator: answers the official SDK's POST {base}/version1/messaging
exactly as AT does, records every message sent, and posts delivery reports.

- Auth: header ``apiKey`` required (any value, or ``state.api_key`` when set), else 401
  "The supplied authentication is invalid" (text), which the SDK raises as AfricasTalkingException.
- Per recipient: 101 Success; a number not matching ``^\\+254\\d{9}$`` gets 403 InvalidPhoneNumber
  (messageId "None"); ``state.set_recipient_status(number, code)`` or ``POST /simulator/recipient-status
  {"number", "code"}`` forces any documented code (401 RiskHold, 405 InsufficientBalance,
  406 UserInBlacklist, 407 CouldNotRoute, 500, 501, 502 ...).
- Whole-request faults: ``POST /simulator/faults {"sms": "http_500"|"http_401"|"slow"|"garbage", "count": N}``.
- Messages: ``GET /simulator/messages?phone=254...&since=<seq>`` (for a terminal phone simulator).
- Delivery reports (when ``state.delivery_url`` is set): form POST ``id, status=Success, phoneNumber,
  networkCode=63902, retryCount=0`` after ``delivery_delay`` s; ``state.set_delivery(number, "Failed",
  "UserInBlackList")`` (or ``POST /simulator/delivery``) makes it a failure with ``failureReason``.
  ``state.fire_pending_now()`` / ``POST /simulator/fire`` posts the pending reports at once.
"""
from __future__ import annotations

import re
import secrets
import threading

import requests
from flask import Flask, Response, jsonify, request

from shared.timeutil import iso, utcnow

from . import FaultQueue, SimState, control_routes, daemon_timer, fault_response, safe_post

STATUS_NAMES = {100: "Processed", 101: "Success", 102: "Queued", 401: "RiskHold", 402: "InvalidSenderId",
                403: "InvalidPhoneNumber", 404: "UnsupportedNumberType", 405: "InsufficientBalance",
                406: "UserInBlacklist", 407: "CouldNotRoute", 409: "DoNotDisturbRejection",
                500: "InternalServerError", 501: "GatewayError", 502: "RejectedByGateway"}
ACCEPTED_CODES = {100, 101, 102}
SMS_FAULTS = ("http_500", "http_401", "slow", "garbage")
AUTH_ERROR = "The supplied authentication is invalid"
NUMBER_RE = re.compile(r"\+254\d{9}")
COST_PER_PART = 0.8
NETWORK_CODE = "63902"
_GSM_BASIC = frozenset("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
                       "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = frozenset("^{}\\[~]|€\f")


def sms_parts(message: str) -> tuple[str, int]:
    """(encoding, parts) AT bills for a message: GSM-7 160/153 or UCS-2 70/67 per part."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXT for ch in message):
        length, single, multi, encoding = sum(2 if ch in _GSM_EXT else 1 for ch in message), 160, 153, "GSM-7"
    else:
        length, single, multi, encoding = len(message.encode("utf-16-le")) // 2, 70, 67, "UCS-2"
    return encoding, 1 if length <= single else -(-length // multi)


def plus_number(number) -> str:
    """'254712345678' or '+254712345678' to AT's '+254712345678' form."""
    number = str(number).strip()
    return f"+{number}" if number.isdigit() else number


def _rejected(number: str, code: int) -> dict:
    return {"statusCode": code, "number": number, "status": STATUS_NAMES[code], "cost": "0", "messageId": "None"}


def _accepted(record: dict, code: int) -> dict:
    return {"statusCode": code, "number": record["to"], "status": STATUS_NAMES[code],
            "cost": f"KES {COST_PER_PART * record['parts']:.4f}", "messageId": record["messageId"],
            "messageParts": record["parts"]}


class ATSimState(SimState):
    """Everything the Africa's Talking simulator remembers; every method is thread-safe."""

    def __init__(self, delivery_url: str | None = None, delivery_delay: float = 1.0, post=requests.post):
        self.lock = threading.RLock()
        self.delivery_url = delivery_url
        self.delivery_delay = delivery_delay
        self.post = post
        self.api_key: str | None = None
        self.wake = threading.Event()
        self.faults = FaultQueue(("sms",), SMS_FAULTS)
        self._clear()

    def _clear(self) -> None:
        self.messages: list[dict] = []
        self.reports: list[dict] = []
        self.recipient_status: dict[str, int] = {}
        self.delivery: dict[str, tuple[str, str | None]] = {}
        self.faults.clear()
        self._pending: dict[str, tuple[threading.Timer, dict, str]] = {}

    def set_recipient_status(self, number, code: int | None) -> None:
        """Force the send-time statusCode for one number (None clears it)."""
        with self.lock:
            self.recipient_status.pop(plus_number(number), None)
            if code is not None:
                if int(code) not in STATUS_NAMES:
                    raise ValueError(f"unknown statusCode {code}; use one of {sorted(STATUS_NAMES)}")
                self.recipient_status[plus_number(number)] = int(code)

    def set_delivery(self, number, status: str = "Success", failure_reason: str | None = None) -> None:
        """Choose the delivery report status (and failureReason) for one number."""
        with self.lock:
            self.delivery[plus_number(number)] = (status, failure_reason)

    def set_fault(self, target: str, fault: str, count: int = 1) -> None:
        """Make the next `count` sends fail as a whole with `fault`."""
        self.faults.set(target, fault, count)

    def send(self, numbers: list[str], message: str, sender: str | None) -> dict:
        """Record the message for each accepted recipient; returns AT's SMSMessageData."""
        encoding, parts = sms_parts(message)
        recipients = [self._send_one(n.strip(), message, sender, encoding, parts) for n in numbers]
        sent = [r for r in recipients if r["statusCode"] in ACCEPTED_CODES]
        total = sum(COST_PER_PART * r["messageParts"] for r in sent)
        return {"Message": f"Sent to {len(sent)}/{len(recipients)} Total Cost: KES {total:.4f}",
                "Recipients": recipients}

    def _send_one(self, number: str, message: str, sender, encoding: str, parts: int) -> dict:
        with self.lock:
            code = self.recipient_status.get(number, 101) if NUMBER_RE.fullmatch(number) else 403
            if code not in ACCEPTED_CODES:
                return _rejected(number, code)
            record = {"seq": len(self.messages) + 1, "messageId": f"ATXid_{secrets.token_hex(16)}",
                      "to": number, "from": sender, "message": message, "parts": parts,
                      "encoding": encoding, "time": iso(utcnow()), "statusCode": code, "delivery": None}
            self.messages.append(record)
            self._schedule_report(record)
        return _accepted(record, code)

    def _schedule_report(self, record: dict) -> None:
        if self.delivery_url:
            timer = daemon_timer(self.delivery_delay, self._report, record["messageId"])
            self._pending[record["messageId"]] = (timer, record, self.delivery_url)

    def _report(self, message_id: str) -> int:
        """Post one pending delivery report; returns 1 if posted, 0 if it was already gone."""
        with self.lock:
            timer, record, url = self._pending.pop(message_id, (None, None, None))
            if record is None:
                return 0
            timer.cancel()
            status, reason = self.delivery.get(record["to"], ("Success", None))
            record["delivery"] = status
        form = {"id": message_id, "status": status, "phoneNumber": record["to"],
                "networkCode": NETWORK_CODE, "retryCount": "0"}
        if reason:
            form["failureReason"] = reason
        result = safe_post(self.post, url, data=form)
        with self.lock:
            self.reports.append({"url": url, "form": form, "status": result})
        return 1

    def fire_pending_now(self) -> int:
        """Post every pending delivery report now; returns how many were posted."""
        with self.lock:
            pending = list(self._pending)
        return sum(self._report(message_id) for message_id in pending)

    def messages_for(self, phone=None, since: int = 0) -> list[dict]:
        """Messages sent (to `phone` if given) with seq > since, oldest first."""
        wanted = plus_number(phone) if phone else None
        with self.lock:
            return [dict(m) for m in self.messages if m["seq"] > since and wanted in (None, m["to"])]

    def _cancel_scheduled(self) -> None:
        """The delivery reports still to post (reset() then forgets messages, overrides and faults)."""
        for timer, _record, _url in self._pending.values():
            timer.cancel()


def _text(body: str, status: int) -> Response:
    return Response(body, status, mimetype="text/plain")


def _render_fault(fault: str) -> Response:
    return _text(AUTH_ERROR, 401) if fault == "http_401" else _text("Internal Server Error", 500)


def _messaging(state: ATSimState) -> Response:
    key = request.headers.get("apiKey")
    if not key or (state.api_key and key != state.api_key):
        return _text(AUTH_ERROR, 401)
    form = request.form
    missing = next((f for f in ("username", "to", "message") if not form.get(f)), None)
    if missing:
        return _text(f"Request is missing required form field '{missing}'", 400)
    numbers = [n for n in form["to"].split(",") if n.strip()]
    response = jsonify(SMSMessageData=state.send(numbers, form["message"], form.get("from")))
    response.status_code = 201
    return response


def _set_recipient_status(state: ATSimState, data: dict) -> None:
    if not data.get("number"):
        raise ValueError("give a number")
    state.set_recipient_status(data["number"], data.get("code", data.get("statusCode")))


def _set_delivery(state: ATSimState, data: dict) -> None:
    if not data.get("number"):
        raise ValueError("give a number")
    state.set_delivery(data["number"], data.get("status", "Success"), data.get("failureReason"))


def _list_messages(state: ATSimState, args) -> list[dict]:
    return state.messages_for(args.get("phone"), int(args.get("since", 0) or 0))


def create_at_sim(*, delivery_url: str | None = None, delivery_delay: float = 1.0, post=requests.post) -> Flask:
    """Build the Africa's Talking fake (state in app.extensions["at_sim"]) so SMS works offline."""
    app = Flask(__name__)
    state = ATSimState(delivery_url, delivery_delay, post)
    app.extensions["at_sim"] = state

    @app.post("/version1/messaging")
    def messaging():
        fault = fault_response(state, "sms", _render_fault)
        return fault if fault is not None else _messaging(state)

    control_routes(app, state, {
        "recipient-status": lambda data: _set_recipient_status(state, data),
        "delivery": lambda data: _set_delivery(state, data),
        "faults": lambda data: state.set_fault("sms", data.get("sms"), data.get("count", 1)),
    }, listing=("messages", lambda args: _list_messages(state, args)))
    return app
