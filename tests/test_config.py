"""Configuration: defaults per profile, and one clear error naming the variable for a bad value."""
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import load_config
from shared.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PROD = {
    "LIPA_PROFILE": "production", "MPESA_CONSUMER_KEY": "k", "MPESA_CONSUMER_SECRET": "s",
    "MPESA_SHORTCODE": "600000", "MPESA_PASSKEY": "p", "MPESA_CALLBACK_TOKEN": "x" * 24,
    "LIPA_PUBLIC_URL": "https://pay.example.com", "AT_USERNAME": "shop", "AT_API_KEY": "a",
    "LIPA_WEBHOOK_SECRET": "w" * 32, "LIPA_DATA_KEY": "IQOk9iwPW-8J7uuFSwz8n-BlKzRxRxY5-NNKOfiJ1WM=",
    "LIPA_LOOKUP_KEY": "l" * 40, "AT_CALLBACK_TOKEN": "a" * 20, "MPESA_ALLOWED_IPS": "196.201.214.200",
}


def test_local_defaults():
    config = load_config({})
    assert config.profile == "local" and config.database_url == "sqlite:///lipa.db"
    assert config.stk_timeout_s == 120 and config.mpesa_shortcode == "174379" and config.sms_enabled


def test_staff_session_and_metrics_settings():
    assert (load_config({}).session_idle_s, load_config({}).viewer_phone_searches_per_h) == (1800, 30)
    assert load_config({}).metrics_token == ""
    config = load_config({"LIPA_SESSION_IDLE_S": "600", "LIPA_VIEWER_PHONE_SEARCHES_PER_H": "5",
                          "LIPA_METRICS_TOKEN": "m" * 20})
    assert (config.session_idle_s, config.viewer_phone_searches_per_h) == (600, 5)
    assert config.metrics_token == "m" * 20 and "m" * 20 not in repr(config)


def test_production_complete():
    config = load_config(PROD)
    assert config.mpesa_base_url == "https://api.safaricom.co.ke"
    assert "x" * 24 not in repr(config) and "***" in repr(config)


@pytest.mark.parametrize("env,variable", [
    ({"LIPA_PROFILE": "staging"}, "LIPA_PROFILE"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"LIPA_STK_TIMEOUT_S": "soon"}, "LIPA_STK_TIMEOUT_S"),
    ({"LIPA_STK_TIMEOUT_S": "0"}, "LIPA_STK_TIMEOUT_S"),
    ({"LIPA_SMS_ENABLED": "maybe"}, "LIPA_SMS_ENABLED"),
    ({"MPESA_BASE_URL": "ftp://x"}, "MPESA_BASE_URL"),
    ({"MPESA_TRANSACTION_TYPE": "Cash"}, "MPESA_TRANSACTION_TYPE"),
    ({"MPESA_TRANSACTION_TYPE": "CustomerBuyGoodsOnline"}, "MPESA_TILL_NUMBER"),
    ({"MPESA_CALLBACK_TOKEN": "short"}, "MPESA_CALLBACK_TOKEN"),
    ({"LIPA_JOB_EXPIRE_PENDING_S": "-1"}, "LIPA_JOB_EXPIRE_PENDING_S"),
    ({**PROD, "MPESA_CALLBACK_TOKEN": ""}, "MPESA_CALLBACK_TOKEN"),
    ({**PROD, "MPESA_PASSKEY": ""}, "MPESA_PASSKEY"),
    ({**PROD, "LIPA_PUBLIC_URL": ""}, "LIPA_PUBLIC_URL"),
    ({"LIPA_PROFILE": "sandbox"}, "MPESA_CONSUMER_KEY"),
    ({**PROD, "LIPA_DATA_KEY": ""}, "LIPA_DATA_KEY"),
    ({**PROD, "LIPA_LOOKUP_KEY": ""}, "LIPA_LOOKUP_KEY"),
    ({"LIPA_DATA_KEY": "not-a-fernet-key"}, "LIPA_DATA_KEY"),
    ({"LIPA_DATA_KEY": f"{PROD['LIPA_DATA_KEY']},short"}, "LIPA_DATA_KEY"),
    ({"LIPA_LOOKUP_KEY": "too-short"}, "LIPA_LOOKUP_KEY"),
    ({**PROD, "AT_CALLBACK_TOKEN": ""}, "AT_CALLBACK_TOKEN"),  # neither it nor AT_ALLOWED_IPS (issue 13)
    ({**PROD, "LIPA_PROFILE": "sandbox", "AT_CALLBACK_TOKEN": ""}, "AT_CALLBACK_TOKEN"),
    ({"AT_CALLBACK_TOKEN": "short"}, "AT_CALLBACK_TOKEN"),
    ({"AT_CALLBACK_TOKEN": "a/b" * 8}, "AT_CALLBACK_TOKEN"),
    ({"AT_ALLOWED_IPS": "10.0.0.1,not-an-ip"}, "AT_ALLOWED_IPS"),
    ({"MPESA_ALLOWED_IPS": "196.201.214.300"}, "MPESA_ALLOWED_IPS"),
    ({**PROD, "MPESA_ALLOWED_IPS": ""}, "MPESA_ALLOWED_IPS"),
    ({**PROD, "LIPA_WEBHOOK_SECRET": "w" * 31}, "LIPA_WEBHOOK_SECRET"),
    ({"LIPA_DATA_KEY": PROD["LIPA_DATA_KEY"], "LIPA_LOOKUP_KEY": PROD["LIPA_DATA_KEY"]}, "LIPA_LOOKUP_KEY"),
    ({"LIPA_SESSION_IDLE_S": "30"}, "LIPA_SESSION_IDLE_S"),
    ({"LIPA_SESSION_IDLE_S": "half an hour"}, "LIPA_SESSION_IDLE_S"),
    ({"LIPA_VIEWER_PHONE_SEARCHES_PER_H": "0"}, "LIPA_VIEWER_PHONE_SEARCHES_PER_H"),
    ({"LIPA_METRICS_TOKEN": "short"}, "LIPA_METRICS_TOKEN"),
])
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError) as info:
        load_config(env)
    assert info.value.variable == variable


def test_personal_data_keys_are_read_and_never_shown():
    second = "k0yVQnMEFv3vIUOvBy2vkiYp7BiQGzWqpiUzTXqN4vY="
    config = load_config({**PROD, "LIPA_DATA_KEY": f" {PROD['LIPA_DATA_KEY']} , {second} "})
    assert config.data_keys == (PROD["LIPA_DATA_KEY"], second) and config.lookup_key == "l" * 40
    assert PROD["LIPA_DATA_KEY"] not in repr(config) and second not in repr(config) and "l" * 40 not in repr(config)


@pytest.mark.server  # a child process
@pytest.mark.parametrize("missing", ["LIPA_DATA_KEY", "LIPA_LOOKUP_KEY", "AT_CALLBACK_TOKEN", "MPESA_ALLOWED_IPS"])
def test_production_without_a_key_or_an_edge_lock_exits_2_naming_it(tmp_path, missing):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **PROD, missing: "",
           "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    proc = subprocess.run([sys.executable, str(ROOT / "run_gateway.py"), "migrate"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and missing in lines[0]
    assert not (tmp_path / "x.db").exists()  # refused before touching the database


def test_the_edges_outside_local():
    """An allowlist alone is enough for AT; sandbox may leave MPESA_ALLOWED_IPS empty; local needs neither."""
    config = load_config({**PROD, "AT_CALLBACK_TOKEN": "", "AT_ALLOWED_IPS": "196.201.214.0/24, 10.0.0.1"})
    assert config.at_allowed_ips == ("196.201.214.0/24", "10.0.0.1") and not config.at_callback_token
    assert load_config({**PROD, "LIPA_PROFILE": "sandbox", "MPESA_ALLOWED_IPS": ""}).mpesa_allowed_ips == ()
    assert "a" * 20 not in repr(load_config(PROD))
    local = load_config({})
    assert local.at_callback_token == "" and local.at_allowed_ips == () and len(local.webhook_secret) < 32


def test_job_intervals():
    assert load_config({"LIPA_JOB_EXPIRE_PENDING_S": "5"}).job_intervals == {"expire-pending": 5}


@pytest.mark.server  # a child process
def test_start_up_exits_2_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LIPA_PROFILE": "staging", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "run_gateway.py"), "migrate"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "LIPA_PROFILE" in lines[0]


@pytest.mark.server  # a child process
def test_dotenv_is_read(tmp_path):
    (tmp_path / ".env").write_text("LIPA_PROFILE=nonsense\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "run_gateway.py"), "migrate"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "LIPA_PROFILE" in proc.stderr


@pytest.mark.server  # a child process
def test_migrate_command(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    proc = subprocess.run([sys.executable, str(ROOT / "run_gateway.py"), "migrate"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    from shared.models.migrations import MIGRATIONS

    assert f"schema version {MIGRATIONS[-1][0]}" in proc.stdout
