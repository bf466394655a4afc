"""`python run_gateway.py [serve|migrate|…]`: the commands in INTERFACES.md."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from shared.config import LOCAL_SMTP_FROM, load_config
from shared.errors import ConfigError
from shared.logsafe import configure_logging

log = logging.getLogger("lipa")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_gateway.py", description="Lipa payment gateway")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="migrate, then serve HTTP (default)")
    _serve_args(serve)
    _serve_args(parser)
    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("scheduler", help="migrate, then run only the scheduled jobs until SIGINT/SIGTERM")
    staff = sub.add_parser("create-staff", help="add a back-office user")
    staff.add_argument("--username", required=True)
    secret = staff.add_mutually_exclusive_group()
    secret.add_argument("--password", help="for scripts only: shows in ps and shell history")
    secret.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    staff.add_argument("--role", required=True, choices=("viewer", "operator", "admin"))
    key = sub.add_parser("create-api-key", help="a merchant API key and its first webhook secret (printed once)")
    key.add_argument("--name", required=True)
    key.add_argument("--email", help="send this merchant a daily settlement summary e-mail (LIPA_SETTLEMENT_HOUR)")
    whsec = sub.add_parser("rotate-webhook-secret",
                           help="a new webhook signing secret for a merchant (the old one signs too for 24 h)")
    whsec.add_argument("--name", required=True)
    deactivate = sub.add_parser("deactivate-staff", help="a staff member can no longer sign in; sessions end")
    deactivate.add_argument("--username", required=True)
    revoke = sub.add_parser("revoke-api-key", help="every key of a merchant stops working")
    revoke.add_argument("--name", required=True)
    c2b = sub.add_parser("register-c2b", help="register the C2B confirmation and validation URLs with Daraja")
    c2b.add_argument("--confirmation-url", help="public URL (default: this gateway's, from LIPA_PUBLIC_URL)")
    c2b.add_argument("--validation-url", help="public URL (default: this gateway's, from LIPA_PUBLIC_URL)")
    c2b.add_argument("--response-type", choices=("Completed", "Cancelled"), default="Completed")
    rotate = sub.add_parser("rotate-keys", help="re-seal personal data with the first LIPA_DATA_KEY key")
    rotate.add_argument("--rehash", action="store_true",
                        help="also recompute every look-up hash with LIPA_LOOKUP_KEY (after changing it)")
    rotate.add_argument("--batch", type=int, default=1000)
    sub.add_parser("new-keys", help="print a fresh LIPA_DATA_KEY and LIPA_LOOKUP_KEY (stores nothing)")
    phone = sub.add_parser("phone", help="a feature phone in the terminal (USSD, SMS, inbox)")
    phone.add_argument("number")
    phone.add_argument("--gateway-url", default="http://127.0.0.1:8000")
    return parser


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-scheduler", action="store_true")
    parser.add_argument("--no-simulators", action="store_true")


def main(argv=None) -> int:
    """Entry point; exit code 2 with one line naming the variable on bad configuration."""
    configure_logging()
    args = build_parser().parse_args(argv)
    if args.command == "new-keys":
        return _new_keys()
    try:
        config = load_config()
        if args.command == "migrate":
            return _migrate(config)
        if args.command in ACCOUNT_COMMANDS:
            return _accounts(config, args)
        if args.command == "register-c2b":
            return _register_c2b(config, args)
        if args.command == "phone":
            return _phone(config, args)
        if args.command == "rotate-keys":
            return _rotate_keys(config, args)
        if args.command == "scheduler":
            return _scheduler(config)
        return _serve(config, args)
    except ConfigError as exc:
        print(f"lipa: configuration error: {exc}", file=sys.stderr)
        return 2


def _open_database(config) -> int:
    """Bind the database, load the personal-data keys (migration 9 seals existing rows with them), migrate."""
    from shared.db import init_db
    from shared.models.keystore import install_keys
    from shared.models.migrations import migrate

    init_db(config.database_url)
    install_keys(config)
    return migrate()


def _migrate(config) -> int:
    version = _open_database(config)
    print(f"database at schema version {version}")
    return 0


def _new_keys() -> int:
    from shared.privacy import crypto

    print(f"LIPA_DATA_KEY={crypto.new_data_key()}")
    print(f"LIPA_LOOKUP_KEY={crypto.new_lookup_key()}")
    return 0


def _rotate_keys(config, args) -> int:
    """Re-seal with the current data key (and with --rehash recompute look-up hashes); idempotent."""
    import time

    from shared.models import rekey
    from shared.privacy.crypto import Unreadable

    if args.batch < 1:
        raise ConfigError("--batch", "must be at least 1")
    _open_database(config)
    started = time.perf_counter()
    try:
        resealed = rekey.reseal_all(args.batch)
        rehashed = rekey.rehash_all(args.batch) if args.rehash else {}
    except Unreadable as exc:
        print(f"lipa: {exc}; keep every old key in LIPA_DATA_KEY until rotate-keys has finished", file=sys.stderr)
        return 1
    print(f"re-sealed {sum(resealed.values())} values with the current data key"
          + (f", rewrote {sum(rehashed.values())} look-up hashes" if args.rehash else "")
          + f" in {time.perf_counter() - started:.1f} s")
    for name, count in {**resealed, **rehashed}.items():
        if count:
            print(f"  {name}: {count}")
    return 0


ACCOUNT_COMMANDS = ("create-staff", "create-api-key", "deactivate-staff", "revoke-api-key",
                    "rotate-webhook-secret")


def _accounts(config, args) -> int:
    """The account commands: a clear one-line error for bad input (or an unknown name), exit code 1."""
    from shared.db import db
    from shared.errors import InvalidInput, NotFound

    try:
        password = _staff_password(args) if args.command == "create-staff" else None
    except (EOFError, KeyboardInterrupt, ValueError) as exc:
        print(f"lipa: {exc or 'no password given'}", file=sys.stderr)
        return 1
    _open_database(config)
    with db.connection_context():
        try:
            print(_account_command(args, password))
        except (InvalidInput, NotFound) as exc:
            print(f"lipa: {exc.message}", file=sys.stderr)
            return 1
    return 0


def _account_command(args, password: str | None) -> str:
    from .backoffice import auth, sessions
    from .notify import webhook_secrets

    if args.command == "create-staff":
        staff = auth.create_staff(args.username, password, args.role)
        return f"staff member {staff.username} created with role {staff.role}"
    if args.command == "deactivate-staff":
        ended = sessions.deactivate_staff(args.username)
        return f"staff member {args.username} deactivated; {ended} session(s) ended"
    if args.command == "revoke-api-key":
        revoked = sessions.revoke_api_keys(args.name)
        return f"{revoked} key(s) of merchant {args.name} revoked"
    if args.command == "rotate-webhook-secret":
        print("the previous secret signs beside it for 24 h, then stops", file=sys.stderr)
        return f"webhook_secret: {webhook_secrets.rotate(args.name)}"
    return _api_key_lines(args.name, args.email)


def _api_key_lines(name: str, email: str | None = None) -> str:
    """The key, and the merchant's first webhook secret: each shown this once, never stored in clear."""
    from shared.models import Merchant

    from .backoffice import auth
    from .notify import webhook_secrets

    key = auth.create_api_key(name, email=email)
    if email is not None:
        print("settlement summaries go to that address every day at LIPA_SETTLEMENT_HOUR (Nairobi time)",
              file=sys.stderr)
    secret = webhook_secrets.issue_first(Merchant.get(Merchant.name == name.strip()))
    kept = "webhook_secret: unchanged (this merchant has one; rotate-webhook-secret makes a new one)"
    return f"api_key: {key}\n" + (f"webhook_secret: {secret}" if secret else kept)


def _staff_password(args) -> str:
    """--password (scripts), --password-stdin (its first line), else asked twice without echo."""
    import getpass

    if args.password is not None:
        return args.password
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise EOFError("no password on standard input")
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def _register_c2b(config, args) -> int:
    """Tell Daraja where C2B payments are validated and confirmed; prints Daraja's answer."""
    from shared.db import db
    from shared.errors import LipaError

    from .app import _daraja
    from .providers.daraja.c2b_register import c2b_urls, register_c2b_urls
    from .providers.daraja.urls import callback_token

    if not config.mpesa_base_url:
        raise ConfigError("MPESA_BASE_URL", "is required to register the C2B URLs")
    _open_database(config)
    with db.connection_context():
        confirmation, validation = c2b_urls(config.public_url or "http://127.0.0.1:8000",
                                            callback_token(config.mpesa_callback_token))
        try:
            answer = register_c2b_urls(_daraja(config), shortcode=config.mpesa_shortcode,
                                       confirmation_url=args.confirmation_url or confirmation,
                                       validation_url=args.validation_url or validation,
                                       response_type=args.response_type)
        except LipaError as exc:
            print(f"lipa: Daraja refused the registration: {exc.message}", file=sys.stderr)
            return 1
    print(f"registered: {answer.get('ResponseDescription', answer)}")
    return 0


def _phone(config, args) -> int:
    """The terminal phone; its SMS inbox is the simulator the local gateway recorded in the database."""
    from shared.db import db, init_db
    from shared.errors import InvalidInput
    from shared.models import Setting

    from .devtools.phone_cli import FeaturePhone

    init_db(config.database_url)
    with db.connection_context():
        places = ({row.key: row.value for row in Setting.select().where(Setting.key.in_((SIM_SETTING, MAIL_SETTING)))}
                  if Setting.table_exists() else {})
    try:
        phone = FeaturePhone(args.number, gateway_url=args.gateway_url, at_sim_url=places.get(SIM_SETTING),
                             at_token=config.at_callback_token, mail_url=places.get(MAIL_SETTING))
    except InvalidInput as exc:
        print(f"lipa: {exc.message}", file=sys.stderr)
        return 2
    return phone.run()


def _serve(config, args) -> int:
    from shared.db import db

    from .server import SERVERS, serve

    if args.workers < 1:
        raise ConfigError("--workers", "must be at least 1")
    kind = os.environ.get("LIPA_SERVER", "granian").strip() or "granian"
    if kind not in SERVERS:
        raise ConfigError("LIPA_SERVER", f"must be one of {', '.join(SERVERS)}")
    public_url = config.public_url or f"http://{_client_host(args.host)}:{args.port}"
    config = config.with_overrides(public_url=public_url)
    mailbox = ""
    if config.is_local and not args.no_simulators:
        config, mailbox = _with_simulators(config, args.host)
    elif not config.mpesa_base_url:
        raise ConfigError("MPESA_BASE_URL", "is required when the simulators are off")
    log.info("database at schema version %d", _open_database(config))
    _remember_simulator(config, mailbox)
    db.close()
    log.info("Lipa gateway (%s profile) on %s with %d worker(s)", config.profile, public_url, args.workers)
    serve(config, host=args.host, port=args.port, workers=args.workers, scheduler=not args.no_scheduler,
          kind=kind)
    return 0


def _scheduler(config) -> int:
    """The jobs alone, in the foreground (for a separate process); exit 0 on SIGINT/SIGTERM."""
    from . import create_app
    from .jobs.scheduler import JobScheduler

    if not config.mpesa_base_url:
        log.warning("MPESA_BASE_URL is not set: STK queries fail until it is (the simulators run only with serve)")
    services = create_app(config).extensions["lipa"]  # migrates, and wires status changes to notifications
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    scheduler = JobScheduler(services).start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("stopping the scheduler")
        scheduler.shutdown()
        try:
            services.tasks.drain()
        except TimeoutError:
            log.warning("exiting with background tasks still running (the sweeps heal them)")
        services.tasks.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


SIM_SETTING = "local.at_simulator_url"
MAIL_SETTING = "local.mail_sink_url"


def _remember_simulator(config, mailbox: str = "") -> None:
    """Tell `run_gateway.py phone` where the SMS inbox and the mailbox are (local profile only)."""
    from shared.db import db, write_tx
    from shared.models import Setting

    if not config.is_local:
        return
    places = {SIM_SETTING: config.at_base_url, MAIL_SETTING: mailbox}
    with db.connection_context(), write_tx():
        for key, value in places.items():
            if not value:
                Setting.delete().where(Setting.key == key).execute()
                continue
            # an upsert: several gateways starting at once on one PostgreSQL database must not collide
            (Setting.insert(key=key, value=value)
             .on_conflict(conflict_target=[Setting.key], update={Setting.value: value}).execute())


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _with_simulators(config, host: str):
    """Start the built-in Daraja, Africa's Talking and SMTP simulators and point the clients at them;
    returns (config, the SMTP sink's mailbox URL, or "" when LIPA_SMTP_URL names a real server)."""
    from .devtools.simulators.server import start_simulators
    from .http.callerguard import at_path

    server = start_simulators(host=_client_host(host), port=0,  # delivery reports on AT's token path when set
                              at_delivery_url=config.public_url + at_path(config.at_callback_token, "/sms/delivery"))
    log.info("simulators: Daraja at %s, Africa's Talking at %s", server.daraja_url, server.at_url)
    config = config.with_overrides(
        mpesa_base_url=config.mpesa_base_url or server.daraja_url,
        at_base_url=config.at_base_url or server.at_url,
    )
    if config.smtp_url:  # a real server was configured: the sink stays idle
        return config, ""
    log.info("simulators: SMTP sink at %s (read it with `phone … inbox --email`)", server.smtp_url)
    return config.with_overrides(smtp_url=server.smtp_url, smtp_from=config.smtp_from or LOCAL_SMTP_FROM), \
        server.mail_url
