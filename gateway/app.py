"""The application factory: everything is built here, nothing at import time."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

from shared.config import Config, load_config
from shared.db import db, init_db
from shared.migrations import migrate

from .mpesa.urls import callback_token, stk_callback_url
from .tasks import Tasks

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024


@dataclass
class Services:
    """What the blueprints and services need, reachable as app.extensions['lipa'] (tests replace parts)."""

    config: Config
    daraja: object
    tasks: Tasks
    callback_token: str
    public_url: str

    @property
    def stk_callback_url(self) -> str:
        return stk_callback_url(self.public_url, self.callback_token)


def create_app(config: Config | None = None, *, daraja=None, tasks: Tasks | None = None) -> Flask:
    """Build the gateway: database bound and migrated, provider clients, blueprints."""
    config = config or load_config()
    init_db(config.database_url)
    migrate()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    with db.connection_context():
        token = callback_token(config.mpesa_callback_token)
    public_url = config.public_url or "http://127.0.0.1:8000"
    app.extensions["lipa"] = Services(
        config=config, daraja=daraja or _daraja(config), tasks=tasks or Tasks(),
        callback_token=token, public_url=public_url,
    )
    _register(app)
    return app


def _daraja(config: Config):
    from .mpesa.client import DarajaClient
    from .mpesa.token_store import DbTokenStore

    return DarajaClient(
        base_url=config.mpesa_base_url, consumer_key=config.mpesa_consumer_key,
        consumer_secret=config.mpesa_consumer_secret, shortcode=config.mpesa_shortcode,
        passkey=config.mpesa_passkey, transaction_type=config.mpesa_transaction_type,
        till_number=config.mpesa_till_number, token_store=DbTokenStore(),
        timeout=(3.05, config.mpesa_timeout_s),
    )


def _register(app: Flask) -> None:
    from . import health, web
    from .mpesa.views import bp as mpesa_bp
    from .ussd.views import bp as ussd_bp

    web.install(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(mpesa_bp)
    app.register_blueprint(ussd_bp)
