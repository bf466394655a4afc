"""The Daraja simulator's reversal, B2C and transaction-status APIs, over real HTTP."""
from __future__ import annotations

import base64
import threading
import uuid

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from gateway.devtools.simulators.daraja import SANDBOX_PASSKEY, expected_password
from tests.helpers import wait_for

pytestmark = pytest.mark.server
CREDENTIAL = base64.b64encode(b"x" * 256).decode()
TS = "20261123153045"


class Receiver:
    """A real HTTP server recording every JSON body posted to it."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @Request.application
    def wsgi(self, request):
        with self.lock:
            self.calls.append((request.path, request.get_json(silent=True)))
        return Response('{"ResultCode": 0, "ResultDesc": "Accepted"}', mimetype="application/json")

    def bodies(self, path: str) -> list[dict]:
        with self.lock:
            return [body for p, body in self.calls if p == path]

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.stop()


@pytest.fixture
def api(sim):
    """POST to a simulator path with a fresh bearer token."""
    token = requests.get(f"{sim.daraja_url}/oauth/v1/generate?grant_type=client_credentials",
                         auth=("key", "secret"), timeout=5).json()["access_token"]

    def post(path, body, bearer=token):
        return requests.post(f"{sim.daraja_url}{path}", json=body, timeout=5,
                             headers={"Authorization": f"Bearer {bearer}"})
    return post


def urls(receiver):
    tag = uuid.uuid4().hex[:8]
    return {"ResultURL": f"{receiver.base}/result/{tag}", "QueueTimeOutURL": f"{receiver.base}/timeout/{tag}"}


def reversal_body(receiver, receipt="NLJ7RT61SV", amount=100, **changes):
    body = {"Initiator": "testapi", "SecurityCredential": CREDENTIAL, "CommandID": "TransactionReversal",
            "TransactionID": receipt, "Amount": amount, "ReceiverParty": "174379", "RecieverIdentifierType": "11",
            **urls(receiver), "Remarks": "Refund LP123", "Occasion": "Refund 1"}
    body.update(changes)
    return body


def b2c_body(receiver, originator=None, amount=100, **changes):
    body = {"OriginatorConversationID": originator or f"LIPA-RF-{uuid.uuid4().hex[:20]}",
            "InitiatorName": "testapi", "SecurityCredential": CREDENTIAL, "CommandID": "BusinessPayment",
            "Amount": amount, "PartyA": "600996", "PartyB": "254708374149", "Remarks": "Refund LP123",
            **urls(receiver), "Occassion": "Refund 1"}
    body.update(changes)
    return body


def result_of(receiver, body, key="ResultURL"):
    path = body[key][len(receiver.base):]
    return wait_for(lambda: receiver.bodies(path), timeout=5)[0]["Result"]


REVERSAL = "/mpesa/reversal/v1/request"
B2C = "/mpesa/b2c/v3/paymentrequest"
STATUS = "/mpesa/transactionstatus/v1/query"


def test_reversal_accepted_then_result_posted(sim, api, receiver):
    body = reversal_body(receiver)
    answer = api(REVERSAL, body)
    assert answer.status_code == 200
    data = answer.json()
    assert data["ResponseCode"] == "0" and data["ResponseDescription"] == "Accept the service request successfully."
    assert data["ConversationID"].startswith("AG_") and data["OriginatorConversationID"]
    result = result_of(receiver, body)
    assert (result["ResultType"], result["ResultCode"]) == (0, 0)
    assert result["ConversationID"] == data["ConversationID"]
    assert result["OriginatorConversationID"] == data["OriginatorConversationID"]
    params = {p["Key"]: p["Value"] for p in result["ResultParameters"]["ResultParameter"]}
    assert params["OriginalTransactionID"] == "NLJ7RT61SV" and params["Amount"] == 100.0
    assert result["TransactionID"] and result["TransactionID"] != "NLJ7RT61SV"


def test_bearer_required(api, receiver):
    answer = api(REVERSAL, reversal_body(receiver), bearer="wrong")
    assert answer.status_code == 404 and answer.json()["errorCode"] == "404.001.03"


@pytest.mark.parametrize("changes, field", [
    ({"RecieverIdentifierType": None, "ReceiverIdentifierType": "11"}, "RecieverIdentifierType"),
    ({"CommandID": "Reversal"}, "CommandID"),
    ({"Amount": 0}, "Amount"),
    ({"SecurityCredential": "not base64!"}, "SecurityCredential"),
    ({"Remarks": "x" * 101}, "Remarks"),
    ({"ResultURL": "ftp://x"}, "ResultURL"),
    ({"TransactionID": ""}, "TransactionID"),
])
def test_reversal_fields_validated(api, receiver, changes, field):
    answer = api(REVERSAL, reversal_body(receiver, **changes))
    assert answer.status_code == 400
    assert answer.json()["errorMessage"] == f"Bad Request - Invalid {field}"


@pytest.mark.parametrize("outcome, code", [("already_reversed", "R000001"), ("invalid_id", "R000002"), ("no_role", 21)])
def test_outcome_per_receipt(sim, api, receiver, outcome, code):
    sim.daraja.set_reversal_outcome("RCPT000001", outcome)
    body = reversal_body(receiver, receipt="RCPT000001")
    assert api(REVERSAL, body).status_code == 200
    result = result_of(receiver, body)
    assert result["ResultCode"] == code and "ResultParameters" not in result


def test_outcome_by_amount(api, receiver):
    body = reversal_body(receiver, amount=62)
    api(REVERSAL, body)
    assert result_of(receiver, body)["ResultCode"] == "R000002"


def test_timeout_posts_to_queue_timeout_url(sim, api, receiver):
    sim.daraja.set_reversal_outcome("RCPTTIMEOUT", "timeout")
    body = reversal_body(receiver, receipt="RCPTTIMEOUT")
    conversation = api(REVERSAL, body).json()["ConversationID"]
    result = result_of(receiver, body, key="QueueTimeOutURL")
    assert result["ConversationID"] == conversation and result["ResultType"] == 1
    assert receiver.bodies(body["ResultURL"][len(receiver.base):]) == []


def test_no_result_never_posts(sim, api, receiver):
    sim.daraja.set_reversal_outcome("RCPTSILENT", "no_result")
    api(REVERSAL, reversal_body(receiver, receipt="RCPTSILENT"))
    assert sim.daraja.fire_pending_now() == 0
    assert [r["outcome"] for r in requests.get(f"{sim.daraja_url}/simulator/results", timeout=5).json()] == [
        "no_result"]


def test_reversing_a_simulated_receipt_twice_is_already_reversed(sim, api, receiver):
    push = {"BusinessShortCode": "174379", "Password": expected_password("174379", SANDBOX_PASSKEY, TS),
            "Timestamp": TS, "TransactionType": "CustomerPayBillOnline", "Amount": 100, "PartyA": "254708374149",
            "PartyB": "174379", "PhoneNumber": "254708374149", "CallBackURL": f"{receiver.base}/stk",
            "AccountReference": "ACC1", "TransactionDesc": "Pay"}
    assert api("/mpesa/stkpush/v1/processrequest", push).status_code == 200
    receipt = wait_for(lambda: receiver.bodies("/stk"))[0]["Body"]["stkCallback"]["CallbackMetadata"]["Item"][1]
    first, second = (reversal_body(receiver, receipt=receipt["Value"], amount=60) for _ in range(2))
    api(REVERSAL, first)
    api(REVERSAL, second)
    assert result_of(receiver, first)["ResultCode"] == 0
    assert result_of(receiver, second)["ResultCode"] == "R000001"


def test_b2c_result_and_idempotent_originator_id(sim, api, receiver):
    body = b2c_body(receiver)
    first, again = api(B2C, body).json(), api(B2C, body).json()
    assert first == again and first["OriginatorConversationID"] == body["OriginatorConversationID"]
    result = result_of(receiver, body)
    assert result["ResultCode"] == 0 and result["OriginatorConversationID"] == body["OriginatorConversationID"]
    params = {p["Key"]: p["Value"] for p in result["ResultParameters"]["ResultParameter"]}
    assert params["TransactionAmount"] == 100 and params["TransactionReceipt"] == result["TransactionID"]
    sim.daraja.fire_pending_now()
    assert len(receiver.bodies(body["ResultURL"][len(receiver.base):])) == 1


@pytest.mark.parametrize("changes, field", [
    ({"Amount": 9}, "Amount"), ({"PartyB": "0708374149"}, "PartyB"), ({"CommandID": "Refund"}, "CommandID"),
    ({"OriginatorConversationID": ""}, "OriginatorConversationID"), ({"Occassion": "x" * 101}, "Occassion"),
])
def test_b2c_fields_validated(api, receiver, changes, field):
    answer = api(B2C, b2c_body(receiver, **changes))
    assert answer.status_code == 400 and answer.json()["errorMessage"] == f"Bad Request - Invalid {field}"


def test_b2c_outcome_by_originator_id(sim, api, receiver):
    body = b2c_body(receiver)
    sim.daraja.set_reversal_outcome(body["OriginatorConversationID"], "no_role")
    api(B2C, body)
    assert result_of(receiver, body)["ResultCode"] == 21


def test_transaction_status(api, receiver):
    body = {"Initiator": "testapi", "SecurityCredential": CREDENTIAL, "CommandID": "TransactionStatusQuery",
            "TransactionID": "NLJ7RT61SV", "PartyA": "174379", "IdentifierType": "4", **urls(receiver),
            "Remarks": "Status", "Occasion": ""}
    assert api(STATUS, body).status_code == 200
    params = {p["Key"]: p["Value"] for p in result_of(receiver, body)["ResultParameters"]["ResultParameter"]}
    assert params["ReceiptNo"] == "NLJ7RT61SV"
    assert api(STATUS, {**body, "IdentifierType": "9"}).json()["errorMessage"] == "Bad Request - Invalid IdentifierType"


def test_faults_apply_to_the_new_targets(sim, api, receiver):
    sim.daraja.set_fault("reversal", "internal")
    answer = api(REVERSAL, reversal_body(receiver))
    assert answer.status_code == 500 and answer.json()["errorCode"] == "500.003.1001"
    assert api(REVERSAL, reversal_body(receiver)).status_code == 200


def test_control_endpoints(sim, receiver, api):
    base = sim.daraja_url
    assert requests.post(f"{base}/simulator/reversal_outcomes", json={"transaction_id": "RX1", "outcome": "nope"},
                         timeout=5).status_code == 400
    assert requests.post(f"{base}/simulator/reversal_outcomes", json={"transaction_id": "RX1",
                                                                      "outcome": "invalid_id"}, timeout=5).ok
    sim.daraja.callback_delay = 30
    body = reversal_body(receiver, receipt="RX1")
    api(REVERSAL, body)
    assert requests.post(f"{base}/simulator/fire", timeout=5).json() == {"posted": 1}
    assert result_of(receiver, body)["ResultCode"] == "R000002"


def test_reset_cancels_pending_results(sim, api, receiver):
    sim.daraja.callback_delay = 30
    body = reversal_body(receiver)
    api(REVERSAL, body)
    requests.post(f"{sim.daraja_url}/simulator/reset", timeout=5).raise_for_status()
    assert sim.daraja.fire_pending_now() == 0
    assert requests.get(f"{sim.daraja_url}/simulator/results", timeout=5).json() == []
