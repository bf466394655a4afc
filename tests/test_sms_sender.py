"""SmsSender: the real africastalking SDK over real HTTP, against the AT simulator and a recording fake."""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from werkzeug.wrappers import Request, Response

from gateway.providers.africastalking import SmsPermanent, SmsResult, SmsRetryable, SmsSender
from tests.conftest import LiveServer
from tests.helpers import free_port

PHONE = "254712345678"
API_KEY = "secret-at-key-123"


class RecordingFake:
    """A stand-in for AT that records the raw request the SDK made and answers what a test chose."""

    ANSWER = {"SMSMessageData": {"Message": "Sent to 1/1", "Recipients": [
        {"statusCode": 101, "number": "+254712345678", "status": "Success", "cost": "KES 0.8000",
         "messageId": "ATXid_fake1", "messageParts": 1}]}}

    def __init__(self):
        self.requests: list[dict] = []
        self.answer = (self.ANSWER, 201, "application/json")
        self.delay = 0.0
        self.release = threading.Event()
        self.server = LiveServer(self)
        self.url = self.server.url

    def __call__(self, environ, start_response):
        request = Request(environ)
        self.requests.append({"path": request.path, "form": request.form.to_dict(),
                              "headers": dict(request.headers)})
        if self.delay:
            self.release.wait(self.delay)
        body, status, content_type = self.answer
        text = json.dumps(body) if isinstance(body, dict) else body
        return Response(text, status, content_type=content_type)(environ, start_response)

    def stop(self):
        self.release.set()
        self.server.stop()


@pytest.fixture
def fake():
    server = RecordingFake()
    yield server
    server.stop()


def sender_for(url: str, **kwargs) -> SmsSender:
    kwargs.setdefault("timeout", (1, 3))
    return SmsSender(username="sandbox", api_key=API_KEY, base_url=url, **kwargs)


def test_sdk_request_reaches_the_fake_at_version1_messaging(fake):
    sender = sender_for(fake.url + "/", sender_id="LIPA")
    result = sender.send(PHONE, "Lipa receipt: paid")
    assert result == SmsResult("ATXid_fake1", 101, "Success", "KES 0.8000")
    [seen] = fake.requests
    assert seen["path"] == "/version1/messaging"
    assert seen["form"] == {"username": "sandbox", "to": "+254712345678", "message": "Lipa receipt: paid",
                            "bulkSMSMode": "1", "from": "LIPA"}
    assert seen["headers"]["Apikey"] == API_KEY
    assert seen["headers"]["Accept"] == "application/json"


class KeepAliveFake(BaseHTTPRequestHandler):
    """AT as a real API is: HTTP/1.1 with keep-alive (werkzeug's test server closes every connection)."""

    protocol_version = "HTTP/1.1"
    ports: list[int] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.ports.append(self.client_address[1])
        body = json.dumps(RecordingFake.ANSWER).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_messages_from_one_thread_share_one_kept_alive_connection():
    """The SDK alone opens a connection (a TLS handshake, in production) per message."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAliveFake)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    KeepAliveFake.ports = []
    try:
        sender = sender_for(f"http://127.0.0.1:{server.server_port}")
        for _ in range(3):
            assert sender.send(PHONE, "Hello").message_id == "ATXid_fake1"
        assert len(KeepAliveFake.ports) == 3 and len(set(KeepAliveFake.ports)) == 1
        other = threading.Thread(target=sender.send, args=(PHONE, "Hello"))
        other.start()
        other.join(10)
        assert len(set(KeepAliveFake.ports)) == 2  # another thread (another lane), its own connection
    finally:
        server.shutdown()
        server.server_close()


def test_no_sender_id_sends_no_from_field(fake):
    sender_for(fake.url).send("+254712345678", "hi")
    assert "from" not in fake.requests[0]["form"]


def test_success_against_the_simulator(sim):
    result = sender_for(sim.at_url).send(PHONE, "hi")
    assert result.status_code == 101 and result.status == "Success"
    assert result.message_id.startswith("ATXid_") and result.cost == "KES 0.8000"
    [message] = sim.at.messages_for(PHONE)
    assert message["messageId"] == result.message_id and message["message"] == "hi"


@pytest.mark.parametrize("code", [100, 102])
def test_processed_and_queued_are_accepted(sim, code):
    sim.at.set_recipient_status(PHONE, code)
    assert sender_for(sim.at_url).send(PHONE, "hi").status_code == code


@pytest.mark.parametrize("code", [401, 405, 407, 500, 501, 502])
def test_temporary_recipient_codes_are_retryable(sim, code):
    sim.at.set_recipient_status(PHONE, code)
    with pytest.raises(SmsRetryable) as caught:
        sender_for(sim.at_url).send(PHONE, "hi")
    assert caught.value.status_code == code and caught.value.should_retry
    assert str(code) in caught.value.reason


@pytest.mark.parametrize("code", [402, 403, 404, 406, 409])
def test_final_recipient_codes_are_permanent(sim, code):
    sim.at.set_recipient_status(PHONE, code)
    with pytest.raises(SmsPermanent) as caught:
        sender_for(sim.at_url).send(PHONE, "hi")
    assert caught.value.status_code == code and not caught.value.should_retry
    assert sim.at.messages_for(PHONE) == []


@pytest.mark.parametrize("fault", ["http_500", "http_401", "garbage"])
def test_whole_request_failures_are_retryable(sim, fault):
    sim.at.set_fault("sms", fault, 1)
    with pytest.raises(SmsRetryable):
        sender_for(sim.at_url).send(PHONE, "hi")
    assert sender_for(sim.at_url).send(PHONE, "hi").status_code == 101  # the fault was used up


def test_read_timeout_is_retryable_and_ambiguous(fake):
    fake.delay = 2.0
    with pytest.raises(SmsRetryable) as caught:
        sender_for(fake.url, timeout=(1, 0.3)).send(PHONE, "hi")
    assert caught.value.ambiguous and "timed out" in caught.value.reason


def test_connection_refused_is_retryable():
    with pytest.raises(SmsRetryable) as caught:
        sender_for(f"http://127.0.0.1:{free_port()}").send(PHONE, "hi")
    assert "unreachable" in caught.value.reason and not caught.value.ambiguous


def test_non_json_success_is_retryable(fake):
    fake.answer = ("<html>maintenance</html>", 200, "text/html")
    with pytest.raises(SmsRetryable, match="not JSON"):
        sender_for(fake.url).send(PHONE, "hi")


def test_invalid_sender_id_with_no_recipients_is_permanent(fake):
    fake.answer = ({"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}}, 201, "application/json")
    with pytest.raises(SmsPermanent) as caught:
        sender_for(fake.url, sender_id="NOPE").send(PHONE, "hi")
    assert caught.value.status_code == 402


def test_unknown_status_code_is_retryable(fake):
    fake.answer = ({"SMSMessageData": {"Recipients": [{"statusCode": 999, "status": "New"}]}}, 201,
                   "application/json")
    with pytest.raises(SmsRetryable, match="999"):
        sender_for(fake.url).send(PHONE, "hi")


def test_phone_refused_by_the_sdk_regex_is_permanent_and_never_sent(fake):
    with pytest.raises(SmsPermanent) as caught:
        sender_for(fake.url).send("07-not-a-phone", "hi")
    assert caught.value.status_code == 403
    assert "07-not-a-phone" not in str(caught.value)
    assert fake.requests == []


def test_logs_never_show_the_api_key_or_a_full_phone(sim, caplog):
    caplog.set_level(logging.DEBUG)
    sender = sender_for(sim.at_url)
    sender.send(PHONE, "secret receipt text")
    sim.at.set_fault("sms", "http_401", 1)
    with pytest.raises(SmsRetryable) as caught:
        sender.send(PHONE, "hi")
    shown = caplog.text + str(caught.value) + repr(sender)
    assert API_KEY not in shown and PHONE not in shown
    assert "254712***678" in caplog.text
    assert "secret receipt text" not in caplog.text
