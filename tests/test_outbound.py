"""Outbound calls only where they may go (issue 13, finding 3: SSRF), through the API and the real dispatcher.

Outside the local profile a callback_url must be https and resolve only to public addresses: every form
of "this machine" or "the private network" is refused when the request is created (a 400 naming the
rule, nothing stored), and a name that resolves public at creation but 127.0.0.1 when the webhook is sent
(DNS rebinding) is never called. LIPA_WEBHOOK_ALLOW opens named hosts or networks, over http too. DNS is
played by replacing ``outbound.resolve``.
"""
from __future__ import annotations

import pytest

from gateway.providers import outbound
from shared.db import db
from shared.models import Notification, PaymentRequest
from tests.factories import tls_files as _tls_files
from tests.helpers import staff_headers
from tests.test_webhooks import Receiver

URL = "/api/v1/payment-requests"
BILL = {"amount": 1500, "description": "Fees", "account": "adm1042"}
DNS = {"shop.example": ["93.184.216.34"], "internal.example": ["127.0.0.1"], "localhost": ["127.0.0.1", "::1"],
       "mixed.example": ["93.184.216.34", "10.0.0.7"], "hooks.internal": ["10.9.9.9"]}


@pytest.fixture
def dns(monkeypatch):
    table = {name: list(addresses) for name, addresses in DNS.items()}

    def resolve(host, port):
        if host not in table:
            raise OSError("no such host")
        return table[host]

    monkeypatch.setattr(outbound, "resolve", resolve)
    return table


@pytest.fixture
def make(make_app, dns):
    """An app outside the local profile (and its operator's headers)."""

    def build(**overrides):
        app = make_app(config_overrides={"profile": "sandbox", "api_rate_limits": False, **overrides})
        with db.connection_context():
            heads = staff_headers(roles=["operator"])["operator"]
        return app.test_client(), heads

    return build


def create(client, heads, url):
    return client.post(URL, headers=heads, json={**BILL, "callback_url": url})


REFUSED = [
    ("https://127.0.0.1/hook", "public addresses"),
    ("https://localhost/hook", "public addresses"),
    ("https://2130706433/hook", "public addresses"),
    ("https://127.1/hook", "public addresses"),
    ("https://0x7f000001/hook", "public addresses"),
    ("https://0177.0.0.1/hook", "public addresses"),
    ("https://0.0.0.0/hook", "public addresses"),
    ("https://user:pass@shop.example/hook", "user:pass@"),
    ("https://shop.example@127.0.0.1/hook", "user:pass@"),
    ("https://169.254.169.254/latest/meta-data/", "public addresses"),
    ("https://[::1]/hook", "public addresses"),
    ("https://[::ffff:127.0.0.1]/hook", "public addresses"),
    ("https://10.0.0.5/hook", "public addresses"),
    ("https://192.168.1.10/hook", "public addresses"),
    ("https://172.16.4.4/hook", "public addresses"),
    ("https://100.64.0.1/hook", "public addresses"),
    ("https://internal.example/hook", "public addresses"),  # a name that resolves to 127.0.0.1
    ("https://mixed.example/hook", "public addresses"),  # one private address among public ones is enough
    ("https://nowhere.example/hook", "does not resolve"),
    ("http://shop.example/hook", "https://"),
]


@pytest.mark.parametrize("url, rule", REFUSED, ids=[u for u, _ in REFUSED])
def test_every_internal_form_is_refused_at_creation_naming_the_rule(make, url, rule):
    client, heads = make()
    answer = create(client, heads, url)
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == "callback_url_refused" and rule in error["message"] and "callback_url" in error["message"]
    with db.connection_context():
        assert PaymentRequest.select().count() == 0


def test_a_public_https_host_is_accepted(make):
    client, heads = make()
    assert create(client, heads, "https://shop.example/hook").status_code == 201


def test_lipa_webhook_allow_opens_named_hosts_and_networks_over_http_too(make):
    client, heads = make(webhook_allow=("hooks.internal", "10.1.0.0/16"))
    assert create(client, heads, "http://hooks.internal:8080/hook").status_code == 201
    assert create(client, heads, "http://10.1.2.3/hook").status_code == 201
    assert create(client, heads, "https://10.2.0.1/hook").status_code == 400  # outside the allowed network
    assert create(client, heads, "http://shop.example/hook").status_code == 400  # public, but http


def test_the_local_profile_allows_this_machine_but_never_credentials(make_app, dns):
    client = make_app(config_overrides={"api_rate_limits": False}).test_client()
    with db.connection_context():
        heads = staff_headers(roles=["operator"])["operator"]
    assert create(client, heads, "http://127.0.0.1:9/hook").status_code == 201
    assert create(client, heads, "http://user:pass@127.0.0.1:9/hook").status_code == 400


@pytest.fixture
def receiver():
    server = Receiver(secret="unused")
    yield server
    server.stop()


def cancel_and_send(client, heads, url, app_client_dns, rebind_to=None):
    made = create(client, heads, url)
    assert made.status_code == 201, made.get_json()
    if rebind_to is not None:
        app_client_dns["rebind.example"] = rebind_to  # the attacker's DNS changes its answer
    rid = made.get_json()["id"]
    assert client.post(f"{URL}/{rid}/cancel", headers=heads).status_code == 200
    with db.connection_context():
        assert client.application.extensions["lipa"].dispatcher.dispatch_once() == 1
        return Notification.get(Notification.request == rid)


def test_a_name_rebound_to_127_0_0_1_after_creation_is_never_called(make, dns, receiver):
    client, heads = make()
    dns["rebind.example"] = ["93.184.216.34"]
    port = receiver.server.port
    row = cancel_and_send(client, heads, f"https://rebind.example:{port}/hook", dns, rebind_to=["127.0.0.1"])
    assert row.status == "FAILED" and "public addresses" in row.failure_reason
    assert receiver.calls == []


def test_the_connection_goes_to_the_vetted_address_with_the_host_name_kept(make, dns, receiver):
    """The name is resolved by the policy (not again by the HTTP library) and the Host header is the name."""
    client, heads = make(webhook_allow=("127.0.0.0/8",))
    dns["rebind.example"] = ["127.0.0.1"]
    row = cancel_and_send(client, heads, f"http://rebind.example:{receiver.server.port}/hook", dns)
    assert row.status == "SENT", row.failure_reason
    [call] = receiver.calls
    assert call["headers"]["Host"] == f"rebind.example:{receiver.server.port}"


def test_https_to_the_pinned_address_still_checks_the_certificate_for_the_host_name(tmp_path, dns):
    """Connected to 127.0.0.1, TLS still sends and verifies the name: right name 200, another name refused."""
    import ssl
    import threading

    from werkzeug.serving import make_server
    from werkzeug.wrappers import Response

    from gateway.providers.webhooks import WebhookRetryable, WebhookSender

    cert, key = _tls_files(tmp_path, "hooks.example")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    seen = []

    def app(environ, start_response):
        seen.append(environ.get("HTTP_HOST"))
        return Response("ok")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        dns.update({"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
        sender = WebhookSender(secret="s" * 32, timeout=(2, 5),
                               policy=outbound.OutboundPolicy(local=False, allow=("127.0.0.0/8",)))
        sender.session.verify = str(cert)
        assert sender.send(f"https://hooks.example:{server.server_port}/hook", "{}") == 200
        assert seen == [f"hooks.example:{server.server_port}"]
        with pytest.raises(WebhookRetryable):  # same address, but the certificate is not for this name
            sender.send(f"https://other.example:{server.server_port}/hook", "{}")
        assert len(seen) == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
