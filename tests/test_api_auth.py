"""Staff login, tokens, merchant keys, roles and rate limits on the API."""
import base64
import hashlib
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.api.ratelimit import Limit, RateLimited, hit
from gateway.backoffice import auth
from shared.errors import InvalidInput
from shared.models import StaffToken
from shared.timeutil import utcnow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def staff(conn):
    return {role: auth.create_staff(role, f"{role}-password", role) for role in auth.ROLES}


def login(client, username, password):
    return client.post("/api/v1/auth/login", json={"username": username, "password": password})


def test_login_returns_an_expiring_token_stored_only_as_a_hash(client, staff):
    response = login(client, "admin", "admin-password")
    assert response.status_code == 200
    body = response.get_json()
    assert body["role"] == "admin" and body["token"].startswith("lps_") and body["expires_at"].endswith("Z")
    assert StaffToken.select().where(StaffToken.token_hash == body["token"]).count() == 0
    assert auth.authenticate(f"Bearer {body['token']}").role == "admin"


@pytest.mark.parametrize("username,password", [("admin", "wrong"), ("nobody", "x"), ("", "")])
def test_bad_credentials_are_401_without_saying_which(client, staff, username, password):
    response = login(client, username, password)
    assert response.status_code in (400, 401)
    if response.status_code == 401:
        assert response.get_json()["error"]["message"] == "Wrong username or password."


@pytest.mark.parametrize("body,ctype,status", [
    ("not json", "application/json", 400), ('{"username": "a"}', "application/json", 400),
    ('{"username": "a", "password": "b", "x": 1}', "application/json", 400), ("username=a", "text/plain", 415),
    ("[]", "application/json", 400),
])
def test_login_bodies(client, staff, body, ctype, status):
    response = client.post("/api/v1/auth/login", data=body, content_type=ctype)
    assert response.status_code == status and "error" in response.get_json()


def test_expired_and_missing_tokens(conn, staff):
    token, _, _ = auth.login("viewer", "viewer-password", now=utcnow() - timedelta(hours=13))
    for header in (f"Bearer {token}", None, "Basic abc", "Bearer nope", "Bearer lpk_nope"):
        with pytest.raises(auth.Unauthorized):
            auth.authenticate(header)


def test_roles_rank(conn, staff):
    viewer = auth.Principal("staff", 1, "v", "viewer")
    viewer.require("viewer")
    with pytest.raises(auth.Forbidden):
        viewer.require("operator")
    with pytest.raises(auth.Forbidden):
        auth.Principal("merchant", 1, "shop").require("viewer")
    auth.Principal("staff", 1, "a", "admin").require("operator")


def test_merchant_keys(conn):
    key = auth.create_api_key("Bus Co")
    principal = auth.authenticate(f"Bearer {key}")
    assert principal.kind == "merchant" and principal.name == "Bus Co"


def test_staff_validation(conn, staff):
    for args in (("admin", "password1", "admin"), ("x", "short", "viewer"), ("y", "password1", "boss"),
                 ("bad name", "password1", "viewer")):
        with pytest.raises(InvalidInput):
            auth.create_staff(*args)
    assert auth.check_password("viewer-password", staff["viewer"].password_hash)
    assert not auth.check_password("viewer-password", "garbage")


def test_a_password_hash_costs_the_production_scrypt_parameters(monkeypatch):
    """The suite hashes cheaply (tests/conftest.py); production hashes at n=2**14, r=8, in the short form."""
    monkeypatch.setattr(auth, "HASH_COST", auth._SCRYPT)
    scheme, salt, digest = auth.hash_password("s3cret-passphrase").split("$")
    assert scheme == "scrypt" and auth._SCRYPT == {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
    assert base64.b64decode(digest) == hashlib.scrypt(b"s3cret-passphrase", salt=base64.b64decode(salt),
                                                      n=2**14, r=8, p=1, dklen=32)
    assert auth.check_password("s3cret-passphrase", f"{scheme}${salt}${digest}")
    assert not auth.check_password("s3cret-passphrasE", f"{scheme}${salt}${digest}")


def test_a_hash_made_at_another_cost_names_it_and_still_checks():
    cheap = auth.hash_password("s3cret-passphrase", cost={"n": 2**4, "r": 8, "p": 1, "dklen": 32})
    assert cheap.startswith("scrypt:16:8:1$") and auth.check_password("s3cret-passphrase", cheap)
    assert not auth.check_password("other-passphrase", cheap)
    assert not auth.check_password("s3cret-passphrase", cheap.replace("scrypt:", "bcrypt:", 1))
    assert not auth.check_password("s3cret-passphrase", cheap.replace(":16:", ":x:", 1))


def test_rate_limit_is_shared_and_says_when_to_retry(conn):
    limit = Limit(3, 60)
    for _ in range(3):
        hit("read:x", limit, now=1000.0)
    with pytest.raises(RateLimited) as info:
        hit("read:x", limit, now=1010.0)
    assert info.value.retry_after == 10
    hit("read:x", limit, now=1021.0)  # a new window


def test_login_failures_lock_the_username_with_retry_after(client, staff):
    codes = [login(client, "admin", "wrong").status_code for _ in range(7)]
    assert codes[:6] == [401] * 6 and codes[6] == 429  # five free failures, the sixth locks for 30 s
    response = login(client, "admin", "admin-password")
    assert response.status_code == 429 and 0 < int(response.headers["Retry-After"]) <= 30


@pytest.mark.server  # a child process
def test_create_staff_and_key_commands(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    run = [sys.executable, str(ROOT / "run_gateway.py")]
    ok = subprocess.run(run + ["create-staff", "--username", "amina", "--password", "s3cret-passphrase",
                               "--role", "admin"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "amina" in ok.stdout and "s3cret-passphrase" not in ok.stdout + ok.stderr
    again = subprocess.run(run + ["create-staff", "--username", "amina", "--password", "s3cret-passphrase",
                                  "--role", "admin"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already exists" in again.stderr
    key = subprocess.run(run + ["create-api-key", "--name", "Bus Co"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert key.returncode == 0 and key.stdout.splitlines()[0].startswith("api_key: lpk_")
