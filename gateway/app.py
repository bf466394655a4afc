"""The application factory: everything is built here, nothing at import time."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import Flask

from shared import logsafe
from shared.config import Config, load_config
from shared.db import db, init_db, is_sqlite
from shared.models.keystore import install_keys
from shared.models.migrations import migrate

from .http.guard import BodyLimit, SafeJSONProvider
from .ingest.tasks import Tasks
from .notify.outbox import Wakeups, bind_wakeups
from .payments.transitions import TransitionHooks, bind_hooks
from .providers.daraja.urls import callback_token, result_url, stk_callback_url, timeout_url
from .ussd.menu import SessionLanguages

if TYPE_CHECKING:  # imported where they are built, so a test's fakes need none of them
    from .http.longpoll import LongPollGate
    from .jobs.scheduler import JobScheduler
    from .mpesa.batches import CallbackDrain
    from .notify.dispatcher import Dispatcher
    from .providers.daraja.client import DarajaClient

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024
LARGER_BODIES = {"/api/v1/reconciliation/statements": 20 * 1024 * 1024}  # M-Pesa statements (routes_ops)


@dataclass
class Services:
    """What the blueprints and services need, reachable as app.extensions['lipa'] (tests replace parts).

    Everything an app wires is held here, nothing in module globals: two apps in one process (tests build
    many) never see each other's listeners. ``hooks`` is bound to every request, background task and job."""

    config: Config
    daraja: DarajaClient
    tasks: Tasks
    callback_token: str
    public_url: str
    hooks: TransitionHooks
    wakeups: Wakeups = field(default_factory=Wakeups)  # which threads queued a message (notify.outbox)
    dispatcher: Dispatcher | None = None
    scheduler: JobScheduler | None = None  # when create_app(start_scheduler=True)
    longpolls: LongPollGate | None = None  # open GET /api/v1/events?wait= (issue 15), per app
    callbacks: CallbackDrain | None = None  # stored STK callbacks applied in batches (issue 15)
    ussd_languages: SessionLanguages = field(default_factory=SessionLanguages)  # a live session's language

    def bind(self) -> None:
        """Make this app's listeners and wake-ups the ones the current thread or request uses."""
        bind_hooks(self.hooks)
        bind_wakeups(self.wakeups)

    def wake_dispatcher(self) -> None:
        """Called once a transaction that queued notifications has committed (the fast path)."""
        if self.wakeups.take() and self.dispatcher is not None:
            self.dispatcher.wake()

    @property
    def stk_callback_url(self) -> str:
        return stk_callback_url(self.public_url, self.callback_token)

    @property
    def result_url(self) -> str:
        return result_url(self.public_url, self.callback_token)

    @property
    def timeout_url(self) -> str:
        return timeout_url(self.public_url, self.callback_token)


def create_app(config: Config | None = None, *, daraja=None, tasks: Tasks | None = None,
               dispatcher=None, start_background: bool = False, start_scheduler: bool = False) -> Flask:
    """Build the gateway: database bound and migrated, provider clients, blueprints.

    start_background starts the notification dispatcher's thread (the server does; tests drive it)."""
    config = config or load_config()
    init_db(config.database_url, pool_max=config.db_pool_max)
    install_keys(config)  # personal-data keys, before migrate(): migration 9 seals existing rows
    migrate()
    app = _App(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.wsgi_app = BodyLimit(app.wsgi_app, MAX_BODY_BYTES, larger=LARGER_BODIES)  # chunked bodies too (issue 7)
    app.json = SafeJSONProvider(app)  # JSON nested too deep is a 400, not a 500
    if config.trusted_proxies:  # behind nginx: the caller's address (MPESA_ALLOWED_IPS, rate limits) and scheme
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies, x_proto=config.trusted_proxies)
    with db.connection_context():
        token = callback_token(config.mpesa_callback_token)
    logsafe.hide_config(config)
    logsafe.hide(token)  # the callback URLs' secret segment (random per database in local)
    public_url = config.public_url or "http://127.0.0.1:8000"
    services = Services(
        config=config, daraja=daraja or _daraja(config),
        tasks=tasks or Tasks(lanes={"callbacks": config.callback_drains}), callback_token=token,
        public_url=public_url, hooks=build_hooks(config),
    )
    services.dispatcher = dispatcher or _dispatcher(config)
    services.longpolls = _longpoll_gate(config)
    services.tasks.after_each = services.wake_dispatcher
    services.callbacks = _callback_drain(services)
    app.extensions["lipa"] = services
    services.bind()  # this thread (the CLI, a test); requests bind their own below
    app.before_request(services.bind)
    _register(app)
    if start_background:
        services.dispatcher.start()
    if start_scheduler:  # the server's workers; stopped in server._worker_exit
        from .jobs.scheduler import JobScheduler
        services.scheduler = JobScheduler(services).start()
    return app


class _App(Flask):
    """Flask, with ensure_sync's answer kept per function: Flask asks inspect whether every hook and view is a
    coroutine on every request (eight times per USSD hop, through inspect); none of ours is, and a function's
    kind never changes. Flask documents overriding this method."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._synced: dict = {}

    def ensure_sync(self, func):
        synced = self._synced.get(func)
        if synced is None:
            synced = self._synced[func] = super().ensure_sync(func)
        return synced


def build_hooks(config: Config) -> TransitionHooks:
    """Status changes wired to their side effects, run inside the same transaction."""
    from .notify.events import PaymentNotifier
    from .notify.mail import ReceiptMailer
    from .payments import flags
    from .payments.requests import on_payment_change
    from .payments.verification import CONFIRM_EXCEPTION
    from .reconciliation.confirm import on_verified
    from .refunds.service import request_refund

    hooks = TransitionHooks(config=config, request_refund=request_refund)
    hooks.verification_purposes[CONFIRM_EXCEPTION] = on_verified
    hooks.add("requests", on_payment_change)
    hooks.add("email", ReceiptMailer(config))  # after "requests": it mails once the request is PAID
    hooks.add("flags", flags.listener(config))
    hooks.add("notify", PaymentNotifier(config))
    return hooks


def _callback_drain(services: Services):
    from .mpesa.batches import CallbackDrain

    return CallbackDrain(services.tasks, wake=services.wake_dispatcher, daraja_of=lambda: services.daraja,
                         drains=1 if is_sqlite() else services.config.callback_drains)


def _longpoll_gate(config: Config):
    from .http.longpoll import LongPollGate

    return LongPollGate(per_principal=config.longpoll_per_principal, total=config.longpoll_total)


def _dispatcher(config: Config):
    from .notify.dispatcher import Dispatcher
    from .providers.africastalking import SmsSender
    from .providers.outbound import OutboundPolicy
    from .providers.webhooks import WebhookSender

    sms = SmsSender(username=config.at_username, api_key=config.at_api_key,
                    sender_id=config.at_sender_id or None, base_url=config.at_base_url or None)
    webhooks = WebhookSender(secret=config.webhook_secret, policy=OutboundPolicy.from_config(config),  # SSRF
                             deadline_s=config.webhook_deadline_s)
    return Dispatcher(sms=sms, webhooks=webhooks, email=_mail_out(config), enabled=config.sms_enabled,
                      base_backoff_s=config.notify_backoff_s, max_backoff_s=config.notify_backoff_s * 120,
                      lease_s=config.notify_lease_s, webhook_workers=config.webhook_workers,
                      sms_workers=config.sms_workers, per_host=config.webhook_per_host)


def _mail_out(config: Config):
    """The e-mail channel over LIPA_SMTP_URL (issue 16); None when it is unset (no e-mail is queued then)."""
    if not config.smtp_url:
        return None
    from .notify.mail import MailOut
    from .providers.smtp import EmailSender

    return MailOut(EmailSender(url=config.smtp_url, sender=config.smtp_from), config)


def _daraja(config: Config):
    from .providers.daraja.client import DarajaClient
    from .providers.daraja.token_store import DbTokenStore

    return DarajaClient(
        base_url=config.mpesa_base_url, consumer_key=config.mpesa_consumer_key,
        consumer_secret=config.mpesa_consumer_secret, shortcode=config.mpesa_shortcode,
        passkey=config.mpesa_passkey, transaction_type=config.mpesa_transaction_type,
        till_number=config.mpesa_till_number, token_store=DbTokenStore(),
        timeout=(3.05, config.mpesa_timeout_s),
    )


def _register(app: Flask) -> None:
    from .api import register as register_api
    from .http import errors as web
    from .http import health
    from .http.callerguard import at_prefix
    from .http.metrics import install_metrics
    from .mpesa.views import bp as mpesa_bp
    from .paypage.views import bp as paypage_bp
    from .sms.views import bp as sms_bp
    from .ussd.views import bp as ussd_bp

    web.install(app)
    install_metrics(app)
    register_api(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(mpesa_bp)
    at_token = app.extensions["lipa"].config.at_callback_token  # set: only /at/<token>/… exist (issue 13)
    app.register_blueprint(ussd_bp, url_prefix=at_prefix(at_token, ussd_bp.url_prefix))
    app.register_blueprint(sms_bp, url_prefix=at_prefix(at_token, sms_bp.url_prefix))
    app.register_blueprint(paypage_bp)
    if app.extensions["lipa"].config.bench_endpoints:  # LIPA_BENCH_ENDPOINTS=1, never in production
        from .devtools.bench_routes import bp as bench_bp

        app.register_blueprint(bench_bp)
