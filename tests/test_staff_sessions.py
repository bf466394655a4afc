"""Issue 13: staff sessions can be ended (logout, password change, idle timeout, deactivate-staff) and merchant
keys revoked (revoke-api-key), each taking effect on the next request; create-staff's password rule and its
ways of reading the password without putting it on the command line."""
from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from gateway import cli
from gateway.backoffice import auth
from gateway.backoffice.passwords import check_password_rule, common_passwords
from shared.db import db
from shared.errors import InvalidInput
from shared.models import AuditLog, StaffToken
from shared.timeutil import utcnow
from tests.child_env import child_env, run_gateway
from tests.conftest import DATA_KEY, LOOKUP_KEY

ME = "/api/v1/payments"
GOOD = "violet-harbour-lantern"


@pytest.fixture
def app(quiet_app):
    return quiet_app


def sign_in(client, username="amina", password=GOOD) -> dict:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


@pytest.fixture
def amina(conn):
    return auth.create_staff("amina", GOOD, "operator")


def test_logout_ends_this_token_at_once_and_no_other(client, amina):
    first, second = sign_in(client), sign_in(client)
    assert client.get(ME, headers=first).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=first).status_code == 204
    again = client.get(ME, headers=first)
    assert again.status_code == 401 and again.get_json()["error"]["code"] == "unauthorized"
    assert client.post("/api/v1/auth/logout", headers=first).status_code == 401
    assert client.get(ME, headers=second).status_code == 200
    assert AuditLog.get(AuditLog.action == "logout").actor == "staff:amina"


def test_a_merchant_key_cannot_log_out(client, conn):
    key = {"Authorization": f"Bearer {auth.create_api_key('Shop')}"}
    assert client.post("/api/v1/auth/logout", headers=key).status_code == 403
    assert client.get(ME, headers=key).status_code == 200


def test_password_change_ends_the_other_sessions(client, amina):
    here, elsewhere = sign_in(client), sign_in(client)
    url = "/api/v1/auth/password"
    wrong = client.post(url, headers=here, json={"current": "not-my-password", "new": "another-long-phrase"})
    assert wrong.status_code == 403 and wrong.get_json()["error"]["code"] == "wrong_password"
    for weak in ("short", "password1234", "AMINA", GOOD):
        refused = client.post(url, headers=here, json={"current": GOOD, "new": weak})
        assert refused.status_code == 400, weak
        assert refused.get_json()["error"]["code"] == "weak_password"
    assert client.get(ME, headers=elsewhere).status_code == 200  # nothing changed yet
    done = client.post(url, headers=here, json={"current": GOOD, "new": "another-long-phrase"})
    assert done.status_code == 200 and done.get_json() == {"changed": True, "sessions_ended": 1}
    assert client.get(ME, headers=elsewhere).status_code == 401
    assert client.get(ME, headers=here).status_code == 200
    assert client.post("/api/v1/auth/login", json={"username": "amina", "password": GOOD}).status_code == 401
    sign_in(client, password="another-long-phrase")


def test_an_idle_session_ends_before_its_absolute_lifetime(client, amina, make_app):
    headers = sign_in(client)
    row = StaffToken.get()
    StaffToken.update(last_used_at=utcnow() - timedelta(minutes=29)).execute()
    assert client.get(ME, headers=headers).status_code == 200
    assert StaffToken.get().last_used_at > utcnow() - timedelta(minutes=1)  # the use was recorded
    StaffToken.update(last_used_at=utcnow() - timedelta(minutes=31)).execute()
    assert client.get(ME, headers=headers).status_code == 401  # LIPA_SESSION_IDLE_S=1800 by default
    patient = make_app(config_overrides={"api_rate_limits": False, "session_idle_s": 3600}).test_client()
    assert patient.get(ME, headers=headers).status_code == 200
    StaffToken.update(expires_at=utcnow() - timedelta(seconds=1)).where(StaffToken.id == row.id).execute()
    assert patient.get(ME, headers=headers).status_code == 401  # the absolute lifetime still holds


@pytest.mark.parametrize("password,why", [
    ("short-pass", "at least 12"), ("amina.wanjiku", "username"), ("Password1234", "common"),
    ("aaaaaaaaaaaaaaaa", "common"),
])
def test_the_password_rule(password, why):
    with pytest.raises(InvalidInput) as info:
        check_password_rule(password, "amina.wanjiku")
    assert why in info.value.message and info.value.code == "weak_password"
    check_password_rule(GOOD, "amina.wanjiku")
    assert len(common_passwords()) > 50 and all(len(p) >= 12 for p in common_passwords())


def test_create_staff_asks_twice_without_echo_when_no_password_is_given(monkeypatch):
    answers = iter([GOOD, GOOD, GOOD, "typo"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    args = argparse.Namespace(password=None, password_stdin=False)
    assert cli._staff_password(args) == GOOD
    with pytest.raises(ValueError):
        cli._staff_password(args)


@pytest.fixture
def env(db_url):
    return child_env({"DATABASE_URL": db_url, "LIPA_DATA_KEY": DATA_KEY, "LIPA_LOOKUP_KEY": LOOKUP_KEY})


@pytest.mark.server  # a child process
def test_create_staff_reads_stdin_and_deactivate_staff_ends_the_sessions(tmp_path, env, client):
    weak = run_gateway(["create-staff", "--username", "amina", "--password-stdin", "--role", "admin"], tmp_path, env,
                       stdin="12345678\n")
    assert weak.returncode == 1 and "at least 12" in weak.stderr and "12345678" not in weak.stderr
    made = run_gateway(["create-staff", "--username", "amina", "--password-stdin", "--role", "admin"], tmp_path, env,
                       stdin=GOOD + "\n")
    assert made.returncode == 0, made.stderr
    with db.connection_context():
        headers = sign_in(client)
    assert client.get(ME, headers=headers).status_code == 200
    gone = run_gateway(["deactivate-staff", "--username", "amina"], tmp_path, env)
    assert gone.returncode == 0 and "1 session(s) ended" in gone.stdout, gone.stderr
    assert client.get(ME, headers=headers).status_code == 401
    assert client.post("/api/v1/auth/login", json={"username": "amina", "password": GOOD}).status_code == 401
    unknown = run_gateway(["deactivate-staff", "--username", "nobody"], tmp_path, env)
    assert unknown.returncode == 1 and "nobody" in unknown.stderr


@pytest.mark.server  # a child process
def test_revoke_api_key_takes_effect_on_the_next_request(tmp_path, env, client):
    with db.connection_context():
        key = {"Authorization": f"Bearer {auth.create_api_key('Shop')}"}
        other = {"Authorization": f"Bearer {auth.create_api_key('Kiosk')}"}
    assert client.get(ME, headers=key).status_code == 200
    revoked = run_gateway(["revoke-api-key", "--name", "Shop"], tmp_path, env)
    assert revoked.returncode == 0 and "1 key(s) of merchant Shop revoked" in revoked.stdout, revoked.stderr
    assert client.get(ME, headers=key).status_code == 401
    assert client.get(ME, headers=other).status_code == 200
    assert run_gateway(["revoke-api-key", "--name", "Nobody"], tmp_path, env).returncode == 1


@pytest.mark.server
def test_the_desktop_client_logs_out_over_http(app, amina):
    import requests

    from admin_app.core.client import ApiClient
    from tests.conftest import LiveServer

    server = LiveServer(app)
    try:
        api = ApiClient(server.url, timeout=10)
        token = api.login("amina", GOOD).token
        assert api.payments().items == []
        api.logout()
        assert api.session_info is None
        answer = requests.get(server.url + ME, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert answer.status_code == 401
        api.logout()  # signed out already: nothing to do
    finally:
        server.stop()
