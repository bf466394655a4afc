"""The provider endpoints behind an allowlist and a secret (issue 13, finding 1 and the callback-token part of 8).

Through the Flask test client, form-encoded as Africa's Talking posts and JSON as Daraja does: a stranger
is answered the very 404 an unknown URL gets (whatever was wrong) and nothing is stored; a wrong token
guessed too often is a 429 even once the guess is right; the legitimate caller still gets through.
"""
from __future__ import annotations

import pytest

from gateway.http.callerguard import FAILED_TOKENS, at_path
from shared.db import db
from shared.models import InboxMessage, UssdSession

from .conftest import CALLBACK_TOKEN, LiveServer, QuietDispatcher
from .factories import make_payment, paid_body

AT_TOKEN = "at-callback-token-0123456789"
STRANGER = {"REMOTE_ADDR": "203.0.113.9"}
AT_FORMS = {
    "/ussd": {"sessionId": "ATUid_guard", "serviceCode": "*384*123#", "phoneNumber": "+254712345678",
              "networkCode": "63902", "text": "2"},
    "/ussd/events": {"sessionId": "ATUid_guard", "status": "Success", "phoneNumber": "+254712345678"},
    "/sms/inbound": {"from": "+254712345678", "to": "22384", "text": "STOP", "id": "ATXid_guard1", "date": "x"},
    "/sms/delivery": {"id": "ATXid_guard2", "status": "Success", "phoneNumber": "+254712345678",
                      "networkCode": "63902", "retryCount": "0"},
}


@pytest.fixture
def at_app(make_app):
    return make_app(dispatcher=QuietDispatcher(), config_overrides={"at_callback_token": AT_TOKEN})


@pytest.fixture
def unknown_url_answer(at_app):
    answer = at_app.test_client().post("/no/such/url")
    return answer.status_code, answer.get_data()


def stored() -> int:
    with db.connection_context():
        return InboxMessage.select().count() + UssdSession.select().count()


def inbox() -> int:
    with db.connection_context():
        return InboxMessage.select().count()


@pytest.mark.parametrize("path", sorted(AT_FORMS))
def test_with_a_token_the_bare_and_the_wrong_paths_are_unknown_urls(at_app, unknown_url_answer, path):
    client = at_app.test_client()
    for url in (path, at_path("not-the-token-at-all", path), at_path(AT_TOKEN[:-1], path)):
        answer = client.post(url, data=AT_FORMS[path])
        assert (answer.status_code, answer.get_data()) == unknown_url_answer, url
    assert stored() == 0


@pytest.mark.parametrize("path", sorted(AT_FORMS))
def test_with_the_right_token_africas_talking_gets_through(at_app, path):
    answer = at_app.test_client().post(at_path(AT_TOKEN, path), data=AT_FORMS[path])
    at_app.extensions["lipa"].tasks.drain()
    assert answer.status_code == 200
    if path == "/ussd":
        assert answer.get_data(as_text=True).startswith(("CON ", "END "))
    if path.startswith("/sms"):
        assert inbox() == 1


def test_the_allowlist_comes_first_and_looks_the_same(make_app, unknown_url_answer):
    app = make_app(dispatcher=QuietDispatcher(), config_overrides={
        "at_callback_token": AT_TOKEN, "at_allowed_ips": ("196.201.214.0/24",)})
    client = app.test_client()
    right = at_path(AT_TOKEN, "/sms/inbound")
    refused = client.post(right, data=AT_FORMS["/sms/inbound"], environ_base=STRANGER)  # right token, wrong place
    assert (refused.status_code, refused.get_data()) == unknown_url_answer and stored() == 0
    inside = {"REMOTE_ADDR": "196.201.214.17"}
    wrong = client.post(at_path("x" * 20, "/sms/inbound"), data=AT_FORMS["/sms/inbound"], environ_base=inside)
    assert (wrong.status_code, wrong.get_data()) == unknown_url_answer and stored() == 0
    assert client.post(right, data=AT_FORMS["/sms/inbound"], environ_base=inside).status_code == 200


def test_an_allowlist_alone_guards_the_bare_paths(make_app):
    app = make_app(dispatcher=QuietDispatcher(), config_overrides={"at_allowed_ips": ("196.201.214.17",)})
    client = app.test_client()
    assert client.post("/ussd", data=AT_FORMS["/ussd"], environ_base=STRANGER).status_code == 404
    assert stored() == 0
    inside = client.post("/ussd", data=AT_FORMS["/ussd"], environ_base={"REMOTE_ADDR": "196.201.214.17"})
    assert inside.status_code == 200 and inside.get_data(as_text=True).startswith(("CON ", "END "))


MPESA_URLS = ["/mpesa/stk/callback/{}", "/mpesa/c2b/validation/{}", "/mpesa/c2b/confirmation/{}",
              "/mpesa/result/{}", "/mpesa/timeout/{}"]


@pytest.mark.parametrize("url", MPESA_URLS)
def test_mpesa_a_disallowed_address_with_the_right_token_is_an_unknown_url(make_app, url):
    app = make_app(dispatcher=QuietDispatcher(), config_overrides={"mpesa_allowed_ips": ("196.201.214.200",)})
    client = app.test_client()
    unknown = client.post("/no/such/url")
    with db.connection_context():
        make_payment()
    for token, remote in ((CALLBACK_TOKEN, "10.1.2.3"), ("wrong-token-0123456789", "196.201.214.200")):
        answer = client.post(url.format(token), json=paid_body(), environ_base={"REMOTE_ADDR": remote})
        assert (answer.status_code, answer.get_data()) == (404, unknown.get_data())
    assert inbox() == 0


def test_too_many_wrong_tokens_are_429_even_for_the_right_one_then_only_for_that_address(at_app):
    client = at_app.test_client()
    form = AT_FORMS["/sms/inbound"]
    for n in range(FAILED_TOKENS.requests):
        assert client.post(at_path(f"guess-{n:04d}-0123456789", "/sms/inbound"), data=form).status_code == 404
    limited = client.post(at_path("guess-last-0123456789", "/sms/inbound"), data=form)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert client.post(at_path(AT_TOKEN, "/sms/inbound"), data=form).status_code == 429  # a right guess gains nothing
    assert client.post(f"/mpesa/stk/callback/{CALLBACK_TOKEN}", json={"Body": {}}).status_code == 429
    assert stored() == 0
    other = client.post(at_path(AT_TOKEN, "/sms/inbound"), data=form, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert other.status_code == 200 and inbox() == 1


@pytest.mark.server
def test_the_phone_cli_and_the_simulator_use_the_token_paths(make_app, sim, monkeypatch):
    """Real HTTP: the feature phone dials and texts, the AT simulator posts its delivery report."""
    from gateway import cli
    from gateway.devtools.phone_cli import FeaturePhone

    holder = {}
    server = LiveServer(lambda environ, start: holder["app"](environ, start))
    holder["app"] = make_app(config_overrides={"at_callback_token": AT_TOKEN, "public_url": server.url,
                                               "mpesa_base_url": sim.daraja_url, "at_base_url": sim.at_url})
    try:
        said = []
        answers = iter(["dial", "2", "sms HELP", "quit"])
        phone = FeaturePhone("0712345678", gateway_url=server.url, at_sim_url=sim.at_url, at_token=AT_TOKEN,
                             ask=lambda _prompt: next(answers), say=said.append)
        assert phone.run() == 0
        assert "Sent." in said and not any("not_found" in line for line in said)
        assert "Not found" not in "\n".join(said)
        started = {}
        monkeypatch.setattr("gateway.devtools.simulators.server.start_simulators",
                            lambda **kwargs: started.update(kwargs) or sim)
        cli._with_simulators(holder["app"].extensions["lipa"].config, "127.0.0.1")
        assert started["at_delivery_url"] == f"{server.url}/at/{AT_TOKEN}/sms/delivery"
        sim.at.delivery_url = started["at_delivery_url"]
        sim.at.send(["+254712345678"], "Paid.", None)
        assert sim.at.fire_pending_now() == 1 and sim.at.reports[-1]["status"] == 200
        holder["app"].extensions["lipa"].tasks.drain()
        assert inbox() == 2  # the SMS and the delivery report, both through the token path
    finally:
        server.stop()


def test_the_deployment_uses_the_token_paths_and_the_production_profile():
    from pathlib import Path

    deploy = Path(__file__).resolve().parents[1] / "docs" / "deploy"
    nginx = (deploy / "nginx.conf").read_text()
    assert "location = /ussd" not in nginx and "location = /sms" not in nginx
    assert "^/at/[A-Za-z0-9_.~-]+/ussd$" in nginx and "sms/delivery" in nginx
    for unit in ("lipa-gateway.service", "lipa-scheduler.service"):
        assert "Environment=LIPA_PROFILE=production" in (deploy / unit).read_text().splitlines()
