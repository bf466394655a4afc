"""Configuration values beyond tests/test_config.py: seconds and switches as operators write them, the
refund method, and which source wins (test overrides > environment > defaults)."""
from __future__ import annotations

import pytest

from shared.config import load_config
from shared.errors import ConfigError


@pytest.mark.parametrize("raw,seconds", [("2.5", 2.5), ("1", 1.0), ("86399", 86399.0), ("", 5.0)])
def test_notify_backoff_is_read_in_seconds(raw, seconds):
    assert load_config({"LIPA_NOTIFY_BACKOFF_S": raw}).notify_backoff_s == seconds


@pytest.mark.parametrize("raw,reason", [("soon", "number of seconds"), ("0", "more than 0"),
                                        ("86400", "less than a day"), ("-3", "more than 0")])
def test_a_bad_backoff_names_the_variable_and_the_rule(raw, reason):
    with pytest.raises(ConfigError) as info:
        load_config({"LIPA_NOTIFY_BACKOFF_S": raw})
    assert info.value.variable == "LIPA_NOTIFY_BACKOFF_S" and reason in str(info.value)


@pytest.mark.parametrize("raw,value", [("1", True), ("TRUE", True), ("yes", True), ("on", True),
                                       ("0", False), ("False", False), ("no", False), ("off", False)])
def test_switches_accept_the_usual_spellings(raw, value):
    config = load_config({"LIPA_SMS_ENABLED": raw, "LIPA_AUTO_REFUND": raw})
    assert config.sms_enabled is value and config.auto_refund is value


def test_refund_method_is_reversal_or_b2c():
    assert load_config({}).refund_method == "reversal"
    assert load_config({"LIPA_REFUND_METHOD": "b2c"}).refund_method == "b2c"
    with pytest.raises(ConfigError) as info:
        load_config({"LIPA_REFUND_METHOD": "cheque"})
    assert info.value.variable == "LIPA_REFUND_METHOD"


def test_trusted_proxies_may_be_zero_but_not_negative():
    assert load_config({"LIPA_TRUSTED_PROXIES": "0"}).trusted_proxies == 0
    assert load_config({"LIPA_TRUSTED_PROXIES": "2"}).trusted_proxies == 2
    with pytest.raises(ConfigError) as info:
        load_config({"LIPA_TRUSTED_PROXIES": "-1"})
    assert info.value.variable == "LIPA_TRUSTED_PROXIES"


def test_process_environment_is_read_without_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("LIPA_STK_TIMEOUT_S=45\nLIPA_MERCHANT_NAME=From dotenv\n")
    monkeypatch.setenv("LIPA_STK_TIMEOUT_S", "30")
    monkeypatch.delenv("LIPA_MERCHANT_NAME", raising=False)
    assert load_config(read_dotenv=False).merchant_name == ""
    both = load_config()
    assert both.stk_timeout_s == 30 and both.merchant_name == "From dotenv"  # the environment wins over .env


def test_overrides_win_and_are_checked():
    config = load_config({"LIPA_REFUND_METHOD": "b2c"}, refund_method="reversal", merchant_name="Duka")
    assert (config.refund_method, config.merchant_name) == ("reversal", "Duka")
    with pytest.raises(ConfigError):
        load_config({}, refund_method="cash")


def test_merchant_name_and_allowed_ips_are_tidied():
    config = load_config({"LIPA_MERCHANT_NAME": "  " + "M" * 80, "MPESA_ALLOWED_IPS": " 196.201.214.200 ,,10.0.0.1 "})
    assert config.merchant_name == "M" * 60
    assert config.mpesa_allowed_ips == ("196.201.214.200", "10.0.0.1")
    assert load_config({"MPESA_BASE_URL": "http://127.0.0.1:9/x/"}).mpesa_base_url == "http://127.0.0.1:9/x"
