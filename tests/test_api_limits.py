"""Issue 13: limits that stop attackers, not staff. Login failures (never successes) count per username and
per address with locks that grow; wrong bearer tokens count per address; a viewer's phone searches are
audited and limited; every API answer says Cache-Control: no-store."""
from __future__ import annotations

import pytest

from gateway.api import common, lockout
from gateway.api.ratelimit import Limit, RateLimited
from gateway.backoffice import auth
from shared.models import AuditLog, LoginFailure
from tests.conftest import QuietDispatcher
from tests.helpers import staff_headers

LOGIN = "/api/v1/auth/login"
OFFICE, ELSEWHERE = {"REMOTE_ADDR": "10.0.0.7"}, {"REMOTE_ADDR": "10.0.0.8"}


@pytest.fixture
def app(make_app):
    """Rate limits on (the default), the dispatcher quiet."""
    return make_app(dispatcher=QuietDispatcher())


@pytest.fixture
def staff(conn):
    for name in ("amina", "brian"):
        auth.create_staff(name, f"{name}-long-password", "viewer")


def login(client, username, password=None, addr=OFFICE):
    return client.post(LOGIN, json={"username": username, "password": password or f"{username}-long-password"},
                       environ_base=addr)


def test_an_office_signing_in_all_day_is_never_refused(client, staff):
    """The old limit counted successes: the eleventh sign-in from one NAT address was a 429."""
    assert [login(client, "amina").status_code for _ in range(30)] == [200] * 30


def test_failures_lock_the_username_and_a_success_resets_it(client, staff):
    assert [login(client, "amina", "wrong").status_code for _ in range(6)] == [401] * 6
    locked = login(client, "amina")  # the right password, but the account is locked
    assert locked.status_code == 429 and locked.get_json()["error"]["code"] == "rate_limited"
    assert 0 < int(locked.headers["Retry-After"]) <= 30
    assert login(client, "amina", addr=ELSEWHERE).status_code == 429  # per username, wherever from
    assert login(client, "brian").status_code == 200  # the office's other staff are not locked out
    LoginFailure.update(locked_until=0).where(LoginFailure.key == "user:amina").execute()  # 30 s later
    assert login(client, "amina").status_code == 200
    assert not LoginFailure.select().where(LoginFailure.key == "user:amina").exists()
    assert [login(client, "amina", "wrong").status_code for _ in range(5)] == [401] * 5  # free again


def test_locks_grow_with_each_further_failure(conn):
    now, locks = 1000.0, []
    for _ in range(9):
        lockout.failed("amina", "10.0.0.9", now=now)
        try:
            lockout.check("amina", "10.0.0.99", now=now)
            locks.append(0)
        except RateLimited as exc:
            locks.append(exc.retry_after)
        now += 1
    assert locks == [0, 0, 0, 0, 0, 30, 60, 120, 240]
    assert lockout.USERNAME.lock_for(100) == 900 and lockout.ADDRESS.lock_for(100) == 3600  # ceilings
    lockout.failed("amina", "10.0.0.9", now=now + 7200)  # an hour of quiet forgives the count
    lockout.check("amina", "10.0.0.99", now=now + 7200)


def test_failures_from_one_address_lock_that_address_whatever_the_usernames(client, staff):
    codes = [login(client, f"guess{i}", "x").status_code for i in range(21)]
    assert codes == [401] * 21
    assert login(client, "amina").status_code == 429  # the spraying address is locked for everyone on it
    assert login(client, "amina", addr=ELSEWHERE).status_code == 200


def test_wrong_bearer_tokens_are_counted_per_address(client, staff, monkeypatch):
    monkeypatch.setattr(common, "BAD_TOKENS", Limit(3, 900))
    token = login(client, "amina", addr=ELSEWHERE).get_json()["token"]
    wrong = [client.get("/api/v1/payments", headers={"Authorization": f"Bearer lps_guess{i}"},
                        environ_base=OFFICE).status_code for i in range(4)]
    assert wrong == [401, 401, 401, 429]
    good = {"Authorization": f"Bearer {token}"}
    refused = client.get("/api/v1/payments", headers=good, environ_base=OFFICE)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0  # no more guesses from here
    assert client.get("/api/v1/payments", headers=good, environ_base=ELSEWHERE).status_code == 200


def test_a_viewers_phone_searches_are_audited_and_limited(make_app, conn):
    app = make_app(dispatcher=QuietDispatcher(), config_overrides={"viewer_phone_searches_per_h": 3})
    client = app.test_client()
    heads = staff_headers(roles=("viewer", "operator"))
    codes = [client.get("/api/v1/payments", query_string={"phone": f"07123456{i:02d}"},
                        headers=heads["viewer"]).status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    rows = list(AuditLog.select().where(AuditLog.action == "phone_search"))
    assert len(rows) == 3 and rows[0].actor == "staff:viewer" and rows[0].details == {"phone": "254712***600"}
    assert client.get("/api/v1/payments", headers=heads["viewer"]).status_code == 200  # other lists still work
    for i in range(5):  # an operator sees phones anyway: not limited, not audited
        assert client.get("/api/v1/payments", query_string={"phone": f"07123457{i:02d}"},
                          headers=heads["operator"]).status_code == 200
    assert AuditLog.select().where(AuditLog.action == "phone_search").count() == 3


def test_every_api_answer_is_no_store(client, staff):
    token = login(client, "amina").get_json()["token"]
    answers = [
        login(client, "amina"), client.get("/api/v1/payments", headers={"Authorization": f"Bearer {token}"}),
        client.get("/api/v1/payments"), client.get("/api/v1/no-such-route"), client.get("/api/v1/openapi.json"),
        client.delete("/api/v1/payments"),
    ]
    assert [a.headers.get("Cache-Control") for a in answers] == ["no-store"] * len(answers)
    assert [a.status_code for a in answers] == [200, 200, 401, 404, 200, 405]
    assert client.get("/healthz").headers.get("Cache-Control") != "no-store"
