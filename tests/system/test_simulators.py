"""The built-in Daraja and Africa's Talking simulators, over real HTTP (and the real AT SDK)."""
from __future__ import annotations

import re
import threading
import time
import uuid

import pytest
import requests
from africastalking.Service import AfricasTalkingException
from africastalking.SMS import SMSService
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from gateway.devtools.simulators import AMOUNT_OUTCOMES, OUTCOMES, start_simulators
from gateway.devtools.simulators.africastalking import sms_parts
from gateway.devtools.simulators.daraja import SANDBOX_PASSKEY, expected_password

pytestmark = pytest.mark.server
TS = "20261123153045"
PHONE = "254712345678"


class Receiver:
    """A tiny real HTTP server recording every request posted to it (callbacks, delivery reports)."""

    def __init__(self):
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        self.arrived = threading.Event()
        self._server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @Request.application
    def wsgi(self, request):
        with self.lock:
            self.calls.append({"path": request.path, "json": request.get_json(silent=True),
                               "form": request.form.to_dict()})
        self.arrived.set()
        return Response('{"ResultCode": 0, "ResultDesc": "Accepted"}', mimetype="application/json")

    def new_url(self) -> str:
        return f"{self.base}/cb/{uuid.uuid4().hex}"

    def calls_to(self, url: str) -> list[dict]:
        path = url[len(self.base):]
        with self.lock:
            return [c for c in self.calls if c["path"] == path]

    def wait_for(self, url: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            self.arrived.clear()
            calls = self.calls_to(url)
            if len(calls) >= count:
                return calls
            if not self.arrived.wait(max(deadline - time.monotonic(), 0)):
                raise AssertionError(f"{count} call(s) to {url} did not arrive; got {len(calls)}")

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def sims():
    with start_simulators(port=0, callback_delay=0.05) as server:
        yield server


@pytest.fixture(scope="module")
def receiver():
    rec = Receiver()
    yield rec
    rec.stop()


@pytest.fixture(scope="module")
def token(sims):
    return oauth(sims, auth=("key", "secret")).json()["access_token"]


@pytest.fixture(autouse=True)
def clean(sims):
    for state in (sims.daraja, sims.at):
        state.reset()
    sims.daraja.callback_delay, sims.daraja.late_delay, sims.daraja.clock = 0.05, 30.0, time.monotonic
    sims.at.delivery_url, sims.at.delivery_delay = None, 0.05
    yield
    sims.daraja.reset()
    sims.at.reset()


def oauth(sims, auth=None, grant="client_credentials"):
    return requests.get(f"{sims.daraja_url}/oauth/v1/generate", params={"grant_type": grant}, auth=auth, timeout=5)


def push_body(callback: str, amount=10, phone=PHONE, **overrides) -> dict:
    body = {"BusinessShortCode": "174379", "Password": expected_password("174379", SANDBOX_PASSKEY, TS),
            "Timestamp": TS, "TransactionType": "CustomerPayBillOnline", "Amount": amount, "PartyA": phone,
            "PartyB": "174379", "PhoneNumber": phone, "CallBackURL": callback, "AccountReference": "ACC42",
            "TransactionDesc": "Payment"}
    body.update(overrides)
    return body


def post(sims, path: str, body: dict, token: str | None, timeout: float = 5):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{sims.daraja_url}{path}", json=body, headers=headers, timeout=timeout)


def push(sims, token, body, timeout: float = 5):
    return post(sims, "/mpesa/stkpush/v1/processrequest", body, token, timeout)


def query(sims, token, checkout_id):
    body = {"BusinessShortCode": "174379", "Password": expected_password("174379", SANDBOX_PASSKEY, TS),
            "Timestamp": TS, "CheckoutRequestID": checkout_id}
    return post(sims, "/mpesa/stkpushquery/v1/query", body, token)


def stk(call: dict) -> dict:
    return call["json"]["Body"]["stkCallback"]


def items(callback: dict) -> dict:
    return {item["Name"]: item.get("Value", "<absent>") for item in callback["CallbackMetadata"]["Item"]}


# --- Daraja: OAuth ---------------------------------------------------------------------------

def test_oauth_issues_a_token_for_basic_auth(sims):
    response = oauth(sims, auth=("key", "secret"))
    assert response.status_code == 200
    assert response.json()["expires_in"] == "3599"
    assert sims.daraja.token_valid(response.json()["access_token"])


@pytest.mark.parametrize("auth, grant, code", [(None, "client_credentials", "400.008.01"),
                                               (("key", "secret"), "password", "400.008.02")])
def test_oauth_refusals(sims, auth, grant, code):
    response = oauth(sims, auth=auth, grant=grant)
    assert response.status_code == 400
    assert response.json()["errorCode"] == code


@pytest.mark.parametrize("bearer", [None, "not-issued"])
def test_push_needs_an_issued_token(sims, receiver, bearer):
    response = push(sims, bearer, push_body(receiver.new_url()))
    assert response.status_code == 404
    assert response.json()["errorCode"] == "404.001.03"
    assert response.json()["errorMessage"] == "Invalid Access Token"


# --- Daraja: STK push and callbacks -------------------------------------------------------------

def test_push_accepted_then_paid_callback_in_documented_shape(sims, receiver, token):
    url = receiver.new_url()
    response = push(sims, token, push_body(url, amount=500))
    assert response.status_code == 200
    accepted = response.json()
    assert re.fullmatch(r"\d+-\d+-1", accepted["MerchantRequestID"])
    assert re.fullmatch(r"ws_CO_\d{14}\d+", accepted["CheckoutRequestID"])
    assert accepted["ResponseCode"] == "0"
    assert accepted["ResponseDescription"] == accepted["CustomerMessage"] == "Success. Request accepted for processing"
    [call] = receiver.wait_for(url)
    callback = stk(call)
    assert set(call["json"]) == {"Body"} and set(call["json"]["Body"]) == {"stkCallback"}
    assert callback["MerchantRequestID"] == accepted["MerchantRequestID"]
    assert callback["CheckoutRequestID"] == accepted["CheckoutRequestID"]
    assert callback["ResultCode"] == 0
    assert callback["ResultDesc"] == "The service request is processed successfully."
    meta = items(callback)
    assert list(meta) == ["Amount", "MpesaReceiptNumber", "Balance", "TransactionDate", "PhoneNumber"]
    assert meta["Amount"] == 500.0 and isinstance(meta["Amount"], float)
    assert re.fullmatch(r"[A-Z0-9]{10}", meta["MpesaReceiptNumber"])
    assert meta["Balance"] == "<absent>"
    assert isinstance(meta["TransactionDate"], int) and len(str(meta["TransactionDate"])) == 14
    assert meta["PhoneNumber"] == int(PHONE)


FAILURES = [(a, o) for a, o in AMOUNT_OUTCOMES.items()
            if o not in ("no_callback", "duplicate", "late", "still_processing")]


@pytest.mark.parametrize("amount, outcome", FAILURES + [(10, "paid")])
def test_amount_table_chooses_the_outcome(sims, receiver, token, amount, outcome):
    url = receiver.new_url()
    assert push(sims, token, push_body(url, amount=amount)).status_code == 200
    callback = stk(receiver.wait_for(url)[0])
    assert (callback["ResultCode"], callback["ResultDesc"]) == OUTCOMES[outcome]
    assert ("CallbackMetadata" in callback) == (outcome == "paid")
    assert sims.daraja.requests_log()[0]["outcome"] == outcome


def test_string_result_code(sims, receiver, token):
    url = receiver.new_url()
    push(sims, token, push_body(url, amount=58))
    assert stk(receiver.wait_for(url)[0])["ResultCode"] == "SFC_IC0003"


def test_per_phone_outcome_beats_the_amount(sims, receiver, token):
    response = requests.post(f"{sims.daraja_url}/simulator/outcomes",
                             json={"phone": "254712000001", "outcome": "cancelled"}, timeout=5)
    assert response.status_code == 200
    sims.daraja.set_outcome("254712000002", "wrong_pin")
    for phone, code in (("254712000001", 1032), ("254712000002", 2001)):
        url = receiver.new_url()
        push(sims, token, push_body(url, amount=10, phone=phone))
        assert stk(receiver.wait_for(url)[0])["ResultCode"] == code
    bad = requests.post(f"{sims.daraja_url}/simulator/outcomes", json={"phone": PHONE, "outcome": "x"}, timeout=5)
    assert bad.status_code == 400


def test_duplicate_posts_the_same_success_twice(sims, receiver, token):
    url = receiver.new_url()
    push(sims, token, push_body(url, amount=56))
    first, second = receiver.wait_for(url, count=2)
    assert first["json"] == second["json"]
    assert stk(first)["ResultCode"] == 0


def test_late_callback_comes_after_the_query_already_says_paid(sims, receiver, token):
    url = receiver.new_url()
    checkout_id = push(sims, token, push_body(url, amount=57)).json()["CheckoutRequestID"]
    sims.daraja.clock = lambda: time.monotonic() + 10  # callback_delay has passed, late_delay has not
    assert query(sims, token, checkout_id).json()["ResultCode"] == "0"
    assert receiver.calls_to(url) == []
    assert sims.daraja.fire_pending_now() == 1
    assert stk(receiver.wait_for(url)[0])["ResultCode"] == 0


def test_no_callback_never_posts_but_the_query_answers(sims, receiver, token):
    sims.daraja.callback_delay = 60
    url = receiver.new_url()
    checkout_id = push(sims, token, push_body(url, amount=55)).json()["CheckoutRequestID"]
    pending = query(sims, token, checkout_id)
    assert pending.status_code == 500
    assert pending.json()["errorCode"] == "500.001.1001"
    assert pending.json()["errorMessage"] == "The transaction is being processed"
    sims.daraja.clock = lambda: time.monotonic() + 61
    decided = query(sims, token, checkout_id)
    assert decided.status_code == 200
    assert decided.json()["ResultCode"] == "0"
    assert sims.daraja.fire_pending_now() == 0
    assert receiver.calls_to(url) == []


@pytest.mark.parametrize("how", ["amount", "phone"])
def test_still_processing_never_posts_and_the_query_answers_4999(sims, receiver, token, how):
    sims.daraja.callback_delay = 60
    if how == "phone":
        requests.post(f"{sims.daraja_url}/simulator/outcomes", json={"phone": PHONE, "outcome": "still_processing"},
                      timeout=5).raise_for_status()
    url = receiver.new_url()
    checkout_id = push(sims, token, push_body(url, amount=59 if how == "amount" else 10)).json()["CheckoutRequestID"]
    assert query(sims, token, checkout_id).json()["errorCode"] == "500.001.1001"
    sims.daraja.clock = lambda: time.monotonic() + 61
    answer = query(sims, token, checkout_id)
    assert answer.status_code == 200
    assert (answer.json()["ResultCode"], answer.json()["ResultDesc"]) == (
        "4999", "The transaction is still under processing")
    assert sims.daraja.fire_pending_now() == 0 and receiver.calls_to(url) == []


@pytest.mark.parametrize("overrides, field", [
    ({"Password": "d3Jvbmc="}, "Password"),
    ({"AccountReference": "A" * 13}, "AccountReference"),
    ({"TransactionDesc": "D" * 14}, "TransactionDesc"),
    ({"Amount": 0}, "Amount"),
    ({"Amount": 250_001}, "Amount"),
    ({"Amount": 1.5}, "Amount"),
    ({"PhoneNumber": "0712345678"}, "PhoneNumber"),
    ({"PartyA": "+254712345678"}, "PartyA"),
    ({"Timestamp": "2026"}, "Timestamp"),
    ({"CallBackURL": "ftp://x"}, "CallBackURL"),
    ({"TransactionType": None}, "TransactionType"),
])
def test_invalid_push_is_refused(sims, receiver, token, overrides, field):
    response = push(sims, token, push_body(receiver.new_url(), **overrides))
    assert response.status_code == 400
    assert response.json()["errorCode"] == "400.002.02"
    assert response.json()["errorMessage"] == f"Bad Request - Invalid {field}"
    assert sims.daraja.requests_log() == []


def test_second_push_to_a_busy_phone_cannot_lock_the_subscriber(sims, receiver, token):
    sims.daraja.callback_delay = 60
    assert push(sims, token, push_body(receiver.new_url())).status_code == 200
    locked = push(sims, token, push_body(receiver.new_url()))
    assert locked.status_code == 500
    assert locked.json()["errorCode"] == "500.001.1001"
    assert locked.json()["errorMessage"].startswith("Unable to lock subscriber")
    assert push(sims, token, push_body(receiver.new_url(), phone="254712000009")).status_code == 200
    sims.daraja.fire_pending_now()
    assert push(sims, token, push_body(receiver.new_url())).status_code == 200


# --- Daraja: faults and query ---------------------------------------------------------------

@pytest.mark.parametrize("fault, status, code, message", [
    ("spike_arrest", 500, "500.003.02", "Spike arrest violation"),
    ("quota", 500, "500.003.03", None),
    ("internal", 500, "500.003.1001", "Internal Server Error"),
    ("invalid_token", 404, "404.001.03", "Invalid Access Token"),
    ("merchant", 500, "500.001.1001", "Merchant does not exist"),
])
def test_push_faults(sims, receiver, token, fault, status, code, message):
    set_fault = requests.post(f"{sims.daraja_url}/simulator/faults", json={"stk_push": fault, "count": 2}, timeout=5)
    assert set_fault.status_code == 200
    for _ in range(2):
        response = push(sims, token, push_body(receiver.new_url()))
        assert (response.status_code, response.json()["errorCode"]) == (status, code)
        assert message is None or response.json()["errorMessage"] == message
    assert push(sims, token, push_body(receiver.new_url())).status_code == 200


def test_garbage_fault_answers_html(sims, receiver, token):
    sims.daraja.set_fault("stk_push", "garbage")
    response = push(sims, token, push_body(receiver.new_url()))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text == "<html>oops</html>"


def test_slow_fault_outlasts_a_short_client_timeout(sims, receiver, token):
    sims.daraja.set_fault("stk_push", "slow")
    with pytest.raises(requests.Timeout):
        push(sims, token, push_body(receiver.new_url(), phone="254712000099"), timeout=0.3)
    sims.daraja.reset()  # wakes the sleeping request, which then answers 503 to nobody


def test_query_states(sims, receiver, token):
    unknown = query(sims, token, "ws_CO_000")
    assert unknown.status_code == 400
    assert unknown.json()["errorMessage"] == "Bad Request - Invalid CheckoutRequestID"
    assert query(sims, None, "ws_CO_000").status_code == 404
    sims.daraja.callback_delay = 60
    url = receiver.new_url()
    checkout_id = push(sims, token, push_body(url, amount=53)).json()["CheckoutRequestID"]
    assert query(sims, token, checkout_id).status_code == 500
    assert sims.daraja.fire_pending_now() == 1
    decided = query(sims, token, checkout_id).json()
    assert decided["ResultCode"] == "1032" and decided["ResultDesc"] == "Request cancelled by user"
    assert decided["ResponseCode"] == "0" and decided["CheckoutRequestID"] == checkout_id
    listed = requests.get(f"{sims.daraja_url}/simulator/requests", timeout=5).json()
    assert [(r["CheckoutRequestID"], r["outcome"]) for r in listed] == [(checkout_id, "cancelled")]


# --- Africa's Talking, through the real SDK --------------------------------------------------

@pytest.fixture
def sms(sims):
    service = SMSService("sandbox", "key")
    service._baseUrl = sims.at_url + "/version1"
    return service


def test_sdk_send_reaches_the_fake_and_gets_the_documented_answer(sims, sms):
    result = sms.send("hi", ["+254712345678"])
    assert isinstance(result, dict)
    data = result["SMSMessageData"]
    assert data["Message"] == "Sent to 1/1 Total Cost: KES 0.8000"
    [recipient] = data["Recipients"]
    assert recipient["statusCode"] == 101 and recipient["status"] == "Success"
    assert recipient["cost"] == "KES 0.8000" and recipient["messageParts"] == 1
    assert re.fullmatch(r"ATXid_[0-9a-f]+", recipient["messageId"])
    listed = requests.get(f"{sims.at_url}/simulator/messages", params={"phone": "254712345678"}, timeout=5).json()
    assert [(m["messageId"], m["message"], m["parts"]) for m in listed] == [(recipient["messageId"], "hi", 1)]


def test_invalid_number_is_rejected_per_recipient(sms):
    data = sms.send("hi", ["+254712345678", "+2547123"])["SMSMessageData"]
    assert data["Message"].startswith("Sent to 1/2")
    bad = data["Recipients"][1]
    assert (bad["statusCode"], bad["status"], bad["messageId"]) == (403, "InvalidPhoneNumber", "None")


def test_recipient_status_override(sims, sms):
    sims.at.set_recipient_status("+254712000001", 406)
    requests.post(f"{sims.at_url}/simulator/recipient-status",
                  json={"number": "254712000002", "code": 405}, timeout=5).raise_for_status()
    recipients = sms.send("hi", ["+254712000001", "+254712000002"])["SMSMessageData"]["Recipients"]
    assert [(r["statusCode"], r["status"]) for r in recipients] == [(406, "UserInBlacklist"),
                                                                    (405, "InsufficientBalance")]
    assert sims.at.messages_for() == []


def test_delivery_reports_are_posted(sims, sms, receiver):
    url = receiver.new_url()
    sims.at.delivery_url = url
    sims.at.set_delivery("+254712000003", "Failed", "UserInBlackList")
    recipients = sms.send("hi", ["+254712345678", "+254712000003"])["SMSMessageData"]["Recipients"]
    reports = {c["form"]["id"]: c["form"] for c in receiver.wait_for(url, count=2)}
    ok, failed = (reports[r["messageId"]] for r in recipients)
    assert ok == {"id": recipients[0]["messageId"], "status": "Success", "phoneNumber": "+254712345678",
                  "networkCode": "63902", "retryCount": "0"}
    assert (failed["status"], failed["failureReason"]) == ("Failed", "UserInBlackList")


@pytest.mark.parametrize("fault, text", [("http_500", "Internal Server Error"),
                                         ("http_401", "The supplied authentication is invalid")])
def test_sms_faults_make_the_sdk_raise(sims, sms, fault, text):
    requests.post(f"{sims.at_url}/simulator/faults", json={"sms": fault}, timeout=5).raise_for_status()
    with pytest.raises(AfricasTalkingException, match=text):
        sms.send("hi", ["+254712345678"])
    assert isinstance(sms.send("hi", ["+254712345678"]), dict)


def test_garbage_sms_fault_and_missing_api_key(sims, sms):
    sims.at.set_fault("sms", "garbage")
    assert sms.send("hi", ["+254712345678"]) == "<html>oops</html>"
    response = requests.post(f"{sims.at_url}/version1/messaging",
                             data={"username": "sandbox", "to": "+254712345678", "message": "hi"}, timeout=5)
    assert (response.status_code, response.text) == (401, "The supplied authentication is invalid")


@pytest.mark.parametrize("message, expected", [("a" * 160, ("GSM-7", 1)), ("a" * 161, ("GSM-7", 2)),
                                               ("[" * 80, ("GSM-7", 1)), ("é" * 10 + "ł", ("UCS-2", 1)),
                                               ("ł" * 71, ("UCS-2", 2)), ("ł" * 135, ("UCS-2", 3))])
def test_sms_parts(message, expected):
    assert sms_parts(message) == expected


def test_server_urls_and_stop():
    with start_simulators(port=0) as server:
        assert server.daraja_url == f"http://127.0.0.1:{server.port}/daraja"
        assert server.at_url == f"http://127.0.0.1:{server.port}/at"
        assert requests.get(server.url + "/", timeout=5).json() == {"daraja": "/daraja", "at": "/at", "mail": "/mail"}
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/", timeout=1)
