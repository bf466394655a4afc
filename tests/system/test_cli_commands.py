"""`python run_gateway.py COMMAND` in a real child process: what each command prints, its exit code, and
that bad input is refused with one clear line (exit 2 for configuration, 1 for a refused request)."""
from __future__ import annotations

import pytest

from shared.config import load_config
from tests.child_env import child_env, run_gateway
from tests.conftest import CALLBACK_TOKEN, DATA_KEY, LOOKUP_KEY
from tests.daraja_fake import FakeDaraja


def one_line(text: str) -> str:
    """The command's own message: its only line starting "lipa:" (log lines come before it), and the last."""
    lines = text.strip().splitlines()
    assert [line for line in lines if line.startswith("lipa:")] == lines[-1:], text
    return lines[-1]


@pytest.fixture
def env(db_url):
    """The suite's database (a SQLite file or PostgreSQL) and keys, on an otherwise clean environment."""
    return child_env({"DATABASE_URL": db_url, "LIPA_DATA_KEY": DATA_KEY, "LIPA_LOOKUP_KEY": LOOKUP_KEY,
                      "MPESA_CONSUMER_KEY": "key", "MPESA_CONSUMER_SECRET": "secret"})


def test_new_keys_prints_a_fresh_usable_pair_and_stores_nothing(tmp_path):
    pairs = []
    for _ in range(2):
        proc = run_gateway(["new-keys"], tmp_path, child_env())
        assert proc.returncode == 0, proc.stderr
        pairs.append(dict(line.split("=", 1) for line in proc.stdout.split()))
    first, second = pairs
    assert set(first) == {"LIPA_DATA_KEY", "LIPA_LOOKUP_KEY"} and first != second
    config = load_config({"LIPA_PROFILE": "local", **first}, read_dotenv=False)  # both well-formed
    assert config.data_keys == (first["LIPA_DATA_KEY"],) and config.lookup_key == first["LIPA_LOOKUP_KEY"]
    assert list(tmp_path.iterdir()) == []


def test_migrate_twice_reports_the_same_version(tmp_path, env):
    runs = [run_gateway(["migrate"], tmp_path, env) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout.startswith("database at schema version ") and runs[0].stdout == runs[1].stdout


@pytest.mark.parametrize("args,extra,variable", [
    (["--workers", "0"], {}, "--workers"),
    (["serve", "--no-simulators", "--port", "9"], {}, "MPESA_BASE_URL"),
    (["register-c2b"], {}, "MPESA_BASE_URL"),
    (["rotate-keys", "--batch", "0"], {}, "--batch"),
    (["create-api-key", "--name", "Shop"], {"LIPA_STK_TIMEOUT_S": "soon"}, "LIPA_STK_TIMEOUT_S"),
])
def test_bad_configuration_exits_2_naming_it(tmp_path, env, args, extra, variable):
    proc = run_gateway(args, tmp_path, {**env, **extra})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = one_line(proc.stderr)
    assert line.startswith("lipa: configuration error:") and variable in line
    assert DATA_KEY not in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["create-staff", "--username", "amina", "--password", "short", "--role", "admin"], "at least 12"),
    (["create-staff", "--username", "no spaces", "--password", "long-enough", "--role", "viewer"], "username"),
    (["create-api-key", "--name", ""], "merchant name"),
])
def test_account_commands_refuse_bad_input_in_one_line(tmp_path, env, args, message):
    proc = run_gateway(args, tmp_path, env)
    assert proc.returncode == 1 and proc.stdout == ""
    line = one_line(proc.stderr)
    assert line.startswith("lipa: ") and message in line and "long-enough" not in line


def test_created_staff_can_log_in(tmp_path, env, make_app):
    proc = run_gateway(["create-staff", "--username", "amina", "--password", "s3cret-passphrase", "--role",
                        "operator"], tmp_path, env)
    assert proc.returncode == 0 and proc.stdout.strip() == "staff member amina created with role operator"
    client = make_app().test_client()
    answer = client.post("/api/v1/auth/login", json={"username": "amina", "password": "s3cret-passphrase"})
    assert answer.status_code == 200 and answer.get_json()["token"]


def test_register_c2b_reports_daraja_refusal(tmp_path, env):
    daraja = FakeDaraja()
    try:
        daraja.queue("/mpesa/c2b/v2/registerurl", 400, {"requestId": "r-1", "errorCode": "400.003.02",
                                                         "errorMessage": "Bad Request - Invalid ShortCode"})
        proc = run_gateway(["register-c2b", "--response-type", "Cancelled"], tmp_path, {
            **env, "MPESA_BASE_URL": daraja.url, "MPESA_CALLBACK_TOKEN": CALLBACK_TOKEN,
            "LIPA_PUBLIC_URL": "https://pay.example.com"})
        [call] = [c for c in daraja.calls if c.path == "/mpesa/c2b/v2/registerurl"]
    finally:
        daraja.stop()
    assert proc.returncode == 1 and proc.stdout == ""
    assert one_line(proc.stderr).startswith("lipa: Daraja refused the registration")
    assert call.body["ResponseType"] == "Cancelled" and CALLBACK_TOKEN not in proc.stderr


def test_register_c2b_sends_the_urls_given(tmp_path, env):
    daraja = FakeDaraja()
    try:
        daraja.queue("/mpesa/c2b/v2/registerurl", 200, {"ResponseCode": "0", "ResponseDescription": "Success"})
        proc = run_gateway(["register-c2b", "--confirmation-url", "https://pay.example.com/c/confirm",
                            "--validation-url", "https://pay.example.com/c/validate"], tmp_path,
                           {**env, "MPESA_BASE_URL": daraja.url})
        [call] = [c for c in daraja.calls if c.path == "/mpesa/c2b/v2/registerurl"]
    finally:
        daraja.stop()
    assert proc.returncode == 0 and proc.stdout.strip() == "registered: Success", proc.stderr
    assert call.body["ConfirmationURL"] == "https://pay.example.com/c/confirm"
    assert call.body["ValidationURL"] == "https://pay.example.com/c/validate"


def test_phone_refuses_a_number_that_is_not_kenyan(tmp_path, env):
    proc = run_gateway(["phone", "12345", "--gateway-url", "http://127.0.0.1:9"], tmp_path, env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert one_line(proc.stderr).startswith("lipa: ")


def test_dotenv_is_read_from_the_working_directory_and_the_environment_wins(tmp_path):
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///from-dotenv.db\nLIPA_STK_TIMEOUT_S=soon\n")
    proc = run_gateway(["migrate"], tmp_path, child_env({"LIPA_STK_TIMEOUT_S": "30"}))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "from-dotenv.db").exists() and not (tmp_path / "lipa.db").exists()


def test_create_api_key_prints_the_key_and_webhook_secret_once_and_rotation_a_new_secret(tmp_path, env):
    made = run_gateway(["create-api-key", "--name", "Shop"], tmp_path, env)
    assert made.returncode == 0, made.stderr
    key_line, secret_line = made.stdout.strip().splitlines()
    assert key_line.startswith("api_key: lpk_") and secret_line.startswith("webhook_secret: whsec_")
    rotated = run_gateway(["rotate-webhook-secret", "--name", "Shop"], tmp_path, env)
    assert rotated.returncode == 0 and "24 h" in rotated.stderr
    [new_line] = rotated.stdout.strip().splitlines()
    assert new_line.startswith("webhook_secret: whsec_") and new_line != secret_line
    unknown = run_gateway(["rotate-webhook-secret", "--name", "Nobody"], tmp_path, env)
    assert unknown.returncode == 1 and unknown.stdout == "" and "Nobody" in one_line(unknown.stderr)
