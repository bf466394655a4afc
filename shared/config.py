"""Configuration from the environment (and a .env file): defaults, then environment, then test overrides."""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, fields, replace
from urllib.parse import urlparse

from .errors import ConfigError
from .mailaddr import smtp_settings

PROFILES = ("local", "sandbox", "production")
TRANSACTION_TYPES = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")
DARAJA_URLS = {"sandbox": "https://sandbox.safaricom.co.ke", "production": "https://api.safaricom.co.ke"}
SANDBOX_SHORTCODE = "174379"
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
JOB_NAMES = (
    "expire-pending", "stuck-payments", "expire-requests", "dispatch-notifications",
    "process-inbox", "reconcile", "retention", "settlement-summary",
)
# Secrets: never logged, never shown in repr.
SECRET_FIELDS = frozenset({
    "mpesa_consumer_secret", "mpesa_passkey", "mpesa_callback_token", "mpesa_initiator_password",
    "at_api_key", "mpesa_consumer_key", "webhook_secret", "data_keys", "lookup_key", "at_callback_token",
    "metrics_token", "smtp_url", "smtp_password",
})
LOCAL_SMTP_FROM = "Lipa <receipts@lipa.local>"  # the local profile's sender, when the sink stands in
MIN_WEBHOOK_SECRET = 32  # LIPA_WEBHOOK_SECRET outside local: an HMAC key worth the name


@dataclass(frozen=True)
class Config:
    profile: str = "local"
    database_url: str = "sqlite:///lipa.db"
    db_pool_max: int = 16  # LIPA_DB_POOL_MAX: PostgreSQL connections per process at most (shared.db.PG_POOL_MAX)
    public_url: str = ""
    ussd_code: str = "*384*123#"  # LIPA_USSD_CODE: the service code customers dial (dial strings, links)
    stk_timeout_s: int = 120
    mpesa_base_url: str = ""
    mpesa_consumer_key: str = ""
    mpesa_consumer_secret: str = ""
    mpesa_shortcode: str = SANDBOX_SHORTCODE
    mpesa_passkey: str = SANDBOX_PASSKEY
    mpesa_transaction_type: str = "CustomerPayBillOnline"
    mpesa_till_number: str = ""
    mpesa_callback_token: str = ""
    mpesa_allowed_ips: tuple = ()
    mpesa_initiator_name: str = ""
    mpesa_initiator_password: str = ""
    mpesa_cert_path: str = ""
    mpesa_timeout_s: float = 10.0
    at_username: str = "sandbox"
    at_api_key: str = ""
    at_sender_id: str = ""
    at_base_url: str = ""
    at_callback_token: str = ""  # AT_CALLBACK_TOKEN: AT's endpoints served under /at/<token>/… (issue 13)
    at_allowed_ips: tuple = ()  # AT_ALLOWED_IPS: addresses or CIDRs allowed to call AT's endpoints
    sms_enabled: bool = True
    sms_on_initiated: bool = False
    sms_on_settled: bool = False
    webhook_secret: str = ""
    webhook_allow: tuple = ()  # LIPA_WEBHOOK_ALLOW: hosts or CIDRs webhooks may reach though private (or http)
    stk_hard_limit_s: int = 3600
    stuck_after_s: int = 900
    auto_refund: bool = False
    refund_method: str = "reversal"
    flag_amount_over: int = 100_000
    four_eyes_over: int = 10_000
    flag_attempts_per_hour: int = 10
    flag_failed_pins: int = 3
    retention_days: int = 30
    notify_backoff_s: float = 5.0  # first retry of a message the provider refused; doubles up to 120x
    notify_lease_s: int = 60  # a claimed message whose sender died is queued again after this
    # Slow work apart from fast work (issue 15)
    webhook_deadline_s: float = 10.0  # LIPA_WEBHOOK_DEADLINE_S: one webhook attempt, connect to last byte
    webhook_workers: int = 4  # LIPA_WEBHOOK_WORKERS: webhook senders, apart from the SMS lane
    callback_drains: int = 2  # LIPA_CALLBACK_DRAINS: threads applying stored STK callbacks (PostgreSQL; 1 on SQLite)
    sms_workers: int = 4  # LIPA_SMS_WORKERS: SMS senders per process (Africa's Talking answers in ~0.3 s)
    webhook_per_host: int = 2  # LIPA_WEBHOOK_PER_HOST: attempts in flight to one merchant host at once
    longpoll_per_principal: int = 2  # LIPA_LONGPOLL_PER_PRINCIPAL: open GET /events?wait= per token
    longpoll_total: int = 8  # LIPA_LONGPOLL_TOTAL: open long-polls per worker process (a quarter of 32 threads)
    api_rate_limits: bool = True
    trusted_proxies: int = 0  # LIPA_TRUSTED_PROXIES: reverse proxies in front, whose X-Forwarded-For is believed
    bench_endpoints: bool = False  # LIPA_BENCH_ENDPOINTS=1: GET /bench/hello for the benchmarks only
    merchant_name: str = ""
    # Staff sessions and limits (issue 13)
    session_idle_s: int = 1800  # LIPA_SESSION_IDLE_S: a staff token unused this long stops working
    viewer_phone_searches_per_h: int = 30  # LIPA_VIEWER_PHONE_SEARCHES_PER_H: phone= searches by a viewer
    metrics_token: str = ""  # LIPA_METRICS_TOKEN: when set, /metrics needs Authorization: Bearer <it>
    # E-mail (issue 16): LIPA_SMTP_URL smtp[s]://[user:password@]host:port, unset = no e-mail at all
    smtp_url: str = ""
    smtp_password: str = ""  # taken from the URL, so the log masking hides it wherever it shows
    smtp_from: str = ""  # LIPA_SMTP_FROM: the sender, "Name <address>" or an address
    settlement_hour: int = 8  # LIPA_SETTLEMENT_HOUR: Nairobi hour the merchants' daily summary goes out
    job_intervals: dict = field(default_factory=dict)
    # Personal data at rest (shared/privacy/crypto.py): Fernet keys, the first seals; the look-up hash key.
    data_keys: tuple = ()
    lookup_key: str = ""

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={'***' if f.name in SECRET_FIELDS and getattr(self, f.name) else getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"Config({shown})"

    @property
    def is_local(self) -> bool:
        return self.profile == "local"

    def with_overrides(self, **overrides) -> "Config":
        return replace(self, **overrides)


def _int(env, name, default, minimum=1):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    return value


def _seconds(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"must be a number of seconds, got {raw!r}") from None
    if not 0 < value < 86400:
        raise ConfigError(name, f"must be more than 0 and less than a day, got {raw}")
    return value


def _bool(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"must be 1 or 0, got {raw!r}")


def _url(env, name, default, schemes=("http", "https")):
    raw = env.get(name) or default
    if raw and urlparse(raw).scheme not in schemes:
        raise ConfigError(name, f"must be a URL starting with {' or '.join(schemes)}://")
    return raw.rstrip("/") if raw else raw


def _comma_list(env, name) -> tuple:
    return tuple(item.strip() for item in (env.get(name) or "").split(",") if item.strip())


def _addresses(env, name) -> tuple:
    """A comma list of IP addresses or CIDR networks (an allowlist of callers)."""
    items = _comma_list(env, name)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(name, f"must be a comma list of IP addresses or CIDRs, got {item!r}") from None
    return items


def load_config(env=None, *, read_dotenv: bool = True, **overrides) -> Config:
    """Read and check every setting; a wrong or missing value raises ConfigError naming it."""
    if env is None:
        if read_dotenv:
            from dotenv import dotenv_values

            env = {**dotenv_values(".env"), **os.environ}
        else:
            env = dict(os.environ)
    profile = env.get("LIPA_PROFILE") or "local"
    if profile not in PROFILES:
        raise ConfigError("LIPA_PROFILE", f"must be one of {', '.join(PROFILES)}, got {profile!r}")
    local = profile == "local"
    db_url = env.get("DATABASE_URL") or "sqlite:///lipa.db"
    if urlparse(db_url).scheme not in ("sqlite", "postgresql", "postgres"):
        raise ConfigError("DATABASE_URL", "must start with sqlite:/// or postgresql://")
    values = dict(
        profile=profile,
        database_url=db_url,
        db_pool_max=_int(env, "LIPA_DB_POOL_MAX", 16),
        public_url=_url(env, "LIPA_PUBLIC_URL", ""),
        ussd_code=_ussd_code(env),
        stk_timeout_s=_int(env, "LIPA_STK_TIMEOUT_S", 120),
        mpesa_base_url=_url(env, "MPESA_BASE_URL", "" if local else DARAJA_URLS[profile]),
        mpesa_consumer_key=env.get("MPESA_CONSUMER_KEY") or ("local-key" if local else ""),
        mpesa_consumer_secret=env.get("MPESA_CONSUMER_SECRET") or ("local-secret" if local else ""),
        mpesa_shortcode=env.get("MPESA_SHORTCODE") or (SANDBOX_SHORTCODE if profile != "production" else ""),
        mpesa_passkey=env.get("MPESA_PASSKEY") or (SANDBOX_PASSKEY if profile != "production" else ""),
        mpesa_transaction_type=env.get("MPESA_TRANSACTION_TYPE") or "CustomerPayBillOnline",
        mpesa_till_number=env.get("MPESA_TILL_NUMBER") or "",
        mpesa_callback_token=env.get("MPESA_CALLBACK_TOKEN") or "",
        mpesa_allowed_ips=_addresses(env, "MPESA_ALLOWED_IPS"),
        mpesa_initiator_name=env.get("MPESA_INITIATOR_NAME") or "",
        mpesa_initiator_password=env.get("MPESA_INITIATOR_PASSWORD") or "",
        mpesa_cert_path=env.get("MPESA_CERT_PATH") or "",
        at_username=env.get("AT_USERNAME") or ("sandbox" if profile != "production" else ""),
        at_api_key=env.get("AT_API_KEY") or ("local-at-key" if local else ""),
        at_sender_id=env.get("AT_SENDER_ID") or "",
        at_base_url=_url(env, "AT_BASE_URL", ""),
        at_callback_token=(env.get("AT_CALLBACK_TOKEN") or "").strip(),
        at_allowed_ips=_addresses(env, "AT_ALLOWED_IPS"),
        sms_enabled=_bool(env, "LIPA_SMS_ENABLED", True),
        sms_on_initiated=_bool(env, "LIPA_SMS_ON_INITIATED", False),
        sms_on_settled=_bool(env, "LIPA_SMS_ON_SETTLED", False),
        webhook_secret=env.get("LIPA_WEBHOOK_SECRET") or ("lipa-local-webhook-secret" if local else ""),
        webhook_allow=_comma_list(env, "LIPA_WEBHOOK_ALLOW"),
        stk_hard_limit_s=_int(env, "LIPA_STK_HARD_LIMIT_S", 3600),
        stuck_after_s=_int(env, "LIPA_STUCK_AFTER_S", 900),
        auto_refund=_bool(env, "LIPA_AUTO_REFUND", False),
        refund_method=env.get("LIPA_REFUND_METHOD") or "reversal",
        flag_amount_over=_int(env, "LIPA_FLAG_AMOUNT_OVER", 100_000),
        four_eyes_over=_int(env, "LIPA_FOUR_EYES_OVER", 10_000),
        flag_attempts_per_hour=_int(env, "LIPA_FLAG_ATTEMPTS_PER_HOUR", 10),
        flag_failed_pins=_int(env, "LIPA_FLAG_FAILED_PINS", 3),
        retention_days=_int(env, "LIPA_RETENTION_DAYS", 30),
        notify_backoff_s=_seconds(env, "LIPA_NOTIFY_BACKOFF_S", 5.0),
        notify_lease_s=_int(env, "LIPA_NOTIFY_LEASE_S", 60),
        webhook_deadline_s=_seconds(env, "LIPA_WEBHOOK_DEADLINE_S", 10.0),
        webhook_workers=_int(env, "LIPA_WEBHOOK_WORKERS", 4),
        callback_drains=_int(env, "LIPA_CALLBACK_DRAINS", 2),
        sms_workers=_int(env, "LIPA_SMS_WORKERS", 4),
        webhook_per_host=_int(env, "LIPA_WEBHOOK_PER_HOST", 2),
        longpoll_per_principal=_int(env, "LIPA_LONGPOLL_PER_PRINCIPAL", 2),
        longpoll_total=_int(env, "LIPA_LONGPOLL_TOTAL", 8),
        api_rate_limits=_bool(env, "LIPA_API_RATE_LIMITS", True),
        trusted_proxies=_int(env, "LIPA_TRUSTED_PROXIES", 0, minimum=0),
        bench_endpoints=_bool(env, "LIPA_BENCH_ENDPOINTS", False),
        merchant_name=(env.get("LIPA_MERCHANT_NAME") or "").strip()[:60],
        session_idle_s=_int(env, "LIPA_SESSION_IDLE_S", 1800, minimum=60),
        viewer_phone_searches_per_h=_int(env, "LIPA_VIEWER_PHONE_SEARCHES_PER_H", 30),
        metrics_token=(env.get("LIPA_METRICS_TOKEN") or "").strip(),
        **smtp_settings(env),
        settlement_hour=_hour(env, "LIPA_SETTLEMENT_HOUR", 8),
        job_intervals={
            name: _int(env, f"LIPA_JOB_{name.upper().replace('-', '_')}_S", 0, minimum=1)
            for name in JOB_NAMES
            if env.get(f"LIPA_JOB_{name.upper().replace('-', '_')}_S")
        },
        data_keys=tuple(key.strip() for key in (env.get("LIPA_DATA_KEY") or "").split(",") if key.strip()),
        lookup_key=(env.get("LIPA_LOOKUP_KEY") or "").strip(),
    )
    values.update(overrides)
    config = Config(**values)
    _check(config)
    return config


_REQUIRED_OUTSIDE_LOCAL = (
    ("mpesa_consumer_key", "MPESA_CONSUMER_KEY"),
    ("mpesa_consumer_secret", "MPESA_CONSUMER_SECRET"),
    ("mpesa_shortcode", "MPESA_SHORTCODE"),
    ("mpesa_passkey", "MPESA_PASSKEY"),
    ("mpesa_callback_token", "MPESA_CALLBACK_TOKEN"),
    ("public_url", "LIPA_PUBLIC_URL"),
    ("at_username", "AT_USERNAME"),
    ("at_api_key", "AT_API_KEY"),
    ("webhook_secret", "LIPA_WEBHOOK_SECRET"),
    ("data_keys", "LIPA_DATA_KEY"),
    ("lookup_key", "LIPA_LOOKUP_KEY"),
)


def _check(config: Config) -> None:
    """Rules that span several settings."""
    if config.refund_method not in ("reversal", "b2c"):
        raise ConfigError("LIPA_REFUND_METHOD", "must be reversal or b2c")
    if config.mpesa_transaction_type not in TRANSACTION_TYPES:
        raise ConfigError("MPESA_TRANSACTION_TYPE", f"must be one of {', '.join(TRANSACTION_TYPES)}")
    if config.mpesa_transaction_type == "CustomerBuyGoodsOnline" and not config.mpesa_till_number:
        raise ConfigError("MPESA_TILL_NUMBER", "is required when MPESA_TRANSACTION_TYPE=CustomerBuyGoodsOnline")
    if config.mpesa_callback_token and len(config.mpesa_callback_token) < 16:
        raise ConfigError("MPESA_CALLBACK_TOKEN", "must be at least 16 characters")
    if config.metrics_token and len(config.metrics_token) < 16:
        raise ConfigError("LIPA_METRICS_TOKEN", "must be at least 16 characters")
    _check_keys(config)
    if config.at_callback_token and len(config.at_callback_token) < 16:
        raise ConfigError("AT_CALLBACK_TOKEN", "must be at least 16 characters")
    if config.at_callback_token and not re.fullmatch(r"[A-Za-z0-9_.~-]+", config.at_callback_token):
        raise ConfigError("AT_CALLBACK_TOKEN", "may hold only letters, digits and - _ . ~ (it is a URL segment)")
    if config.is_local:
        return
    for attr, variable in _REQUIRED_OUTSIDE_LOCAL:
        if not getattr(config, attr):
            raise ConfigError(variable, f"is required in the {config.profile} profile")
    _check_edges(config)


def _check_edges(config: Config) -> None:
    """Outside local, every door from the internet has a lock (issue 13)."""
    if not (config.at_callback_token or config.at_allowed_ips):
        raise ConfigError("AT_CALLBACK_TOKEN", f"(or AT_ALLOWED_IPS) is required in the {config.profile} profile")
    if config.profile == "production" and not config.mpesa_allowed_ips:
        raise ConfigError("MPESA_ALLOWED_IPS", "is required in the production profile (Safaricom's callback "
                                               "addresses, see the README's Security section)")
    if len(config.webhook_secret) < MIN_WEBHOOK_SECRET:
        raise ConfigError("LIPA_WEBHOOK_SECRET", f"must be at least {MIN_WEBHOOK_SECRET} characters "
                                                 f"in the {config.profile} profile")


def _check_keys(config: Config) -> None:
    """Well-formed personal-data keys (the message never shows a key). Local may leave them unset."""
    from cryptography.fernet import Fernet

    from .privacy.crypto import MIN_LOOKUP_KEY

    for key in config.data_keys:
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ConfigError("LIPA_DATA_KEY", "must be a comma list of Fernet keys (44 characters each; "
                                               "`python run_gateway.py new-keys` makes them)") from None
    if config.lookup_key and len(config.lookup_key) < MIN_LOOKUP_KEY:
        raise ConfigError("LIPA_LOOKUP_KEY", f"must be at least {MIN_LOOKUP_KEY} characters")
    if config.lookup_key and config.lookup_key in config.data_keys:
        raise ConfigError("LIPA_LOOKUP_KEY", "must differ from every LIPA_DATA_KEY key")


def _ussd_code(env) -> str:
    """LIPA_USSD_CODE: a USSD service code such as *384*123#."""
    code = (env.get("LIPA_USSD_CODE") or "*384*123#").strip()
    if not re.fullmatch(r"\*\d+(\*\d+)*#", code):
        raise ConfigError("LIPA_USSD_CODE", f"must look like *384*123#, got {code!r}")
    return code


def _hour(env, name, default) -> int:
    """An hour of the day, 0 to 23."""
    value = _int(env, name, default, minimum=0)
    if value > 23:
        raise ConfigError(name, f"must be an hour from 0 to 23, got {value}")
    return value

