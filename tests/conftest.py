"""Fixtures: a fresh database per test (a SQLite file, or PostgreSQL when LIPA_TEST_DATABASE_URL is set),
the app, its test client, the built-in simulators over real HTTP, and a live gateway server."""
from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from shared.config import load_config
from shared.db import db, init_db
from shared.models import ALL_MODELS, Staff
from shared.models.migrations import migrate

FIXTURES = Path(__file__).parent / "fixtures"
PG_URL = os.environ.get("LIPA_TEST_DATABASE_URL", "")
CALLBACK_TOKEN = "test-callback-token-0123456789"
# Fixed personal-data keys (tests only), so every app and test of a run reads what another one sealed.
DATA_KEY = "7XqMC1cRj4vVQ0Cw8mJ0y2mXo5y1Pp6dJXk9m3b2r4E="
LOOKUP_KEY = "test-lookup-key-0123456789abcdefghijkl"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def fixture_json(name: str) -> dict:
    return json.loads(fixture_text(name))


# scrypt at a fraction of the production cost (2**14: 40 ms a hash here, and most API tests sign in several
# staff members). A cheap hash names its cost (auth.hash_password), so a gateway process the tests start
# checks it too; tests/test_api_auth.py checks the production cost itself.
CHEAP_SCRYPT = {"n": 2**4, "r": 8, "p": 1, "dklen": 32}


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes():
    from gateway.backoffice import auth

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "HASH_COST", CHEAP_SCRYPT)
        yield


@pytest.fixture(scope="session", autouse=True)
def url_builders_on_first_use():
    """werkzeug compiles two URL builders per route as each app is made, most of an app's 18 ms here, and
    the suite makes an app (and simulators) per test: each is compiled, the same way, on its first url_for."""
    from werkzeug.routing.rules import Rule

    compile_builder = Rule._compile_builder

    def on_first_use(rule, append_unknown=True):
        compiled = []

        def build(*args, **kwargs):  # bound to the rule like the compiled one: build(rule, **values)
            if not compiled:
                compiled.append(compile_builder(rule, append_unknown))
            return compiled[0](*args, **kwargs)

        return build

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Rule, "_compile_builder", on_first_use)
        yield


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """One SQLite file migrated once per run; each test gets a copy (a fresh migration costs more than the
    test itself in most files). The copy is the same schema a fresh migrate() builds: migrate() then finds
    nothing to do, and tests/test_migrations.py still migrates a blank file (``fresh_db_url``)."""
    path = tmp_path_factory.mktemp("template") / "lipa.db"
    init_db(f"sqlite:///{path}")
    migrate()
    db.close()
    with closing(sqlite3.connect(path)) as con:  # its write-ahead log folded in: the file alone is the database
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def fresh_db_url(tmp_path):
    """A database nothing has touched: a new SQLite file, or the PostgreSQL test database emptied."""
    if not PG_URL:
        return f"sqlite:///{tmp_path}/fresh.db"
    return _emptied_pg()


def _emptied_pg() -> str:
    init_db(PG_URL)
    migrate()
    with db.connection_context():
        tables = ", ".join(f'"{m._meta.table_name}"' for m in ALL_MODELS)
        db.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    return PG_URL


@pytest.fixture
def db_url(tmp_path, migrated_sqlite):
    """A clean, migrated database: a copy of the run's migrated SQLite file, or the PostgreSQL test
    database emptied."""
    if not PG_URL:
        shutil.copyfile(migrated_sqlite, tmp_path / "lipa.db")
        yield f"sqlite:///{tmp_path}/lipa.db"
        return
    yield _emptied_pg()


@pytest.fixture
def database(db_url):
    """The test's database, migrated, with a connection open: for service-level tests without an app."""
    init_db(db_url)
    migrate()
    with db.connection_context():
        yield db


@pytest.fixture
def config(db_url):
    from shared.models.keystore import install_keys

    config = load_config(
        {"LIPA_PROFILE": "local", "DATABASE_URL": db_url, "MPESA_CALLBACK_TOKEN": CALLBACK_TOKEN,
         "LIPA_DATA_KEY": DATA_KEY, "LIPA_LOOKUP_KEY": LOOKUP_KEY},
        mpesa_base_url="http://127.0.0.1:9/unused", at_base_url="http://127.0.0.1:9/unused",
    )
    install_keys(config)  # also for tests that write rows before (or without) building an app
    return config


class QuietDispatcher:
    """Sends nothing, so outbox rows stay as the code under test left them."""

    def wake(self):
        pass

    def start(self):
        pass

    def stop(self, timeout=5):
        pass


class ClosingClient(FlaskClient):
    """Closes each response as a real server does, so call_on_close work (the STK push) runs.
    ``keep_open=True`` leaves it open: the answer is still "on its way" to the caller."""

    def open(self, *args, keep_open: bool = False, **kwargs):
        response = super().open(*args, **kwargs)
        if not keep_open:
            response.get_data()
            response.close()
        return response


class LiveServer:
    """A real threaded HTTP server around a WSGI app, on a free port of 127.0.0.1."""

    def __init__(self, app):
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        daemon=True)  # stop() waits for the next poll
        self._thread.start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def sim():
    """The built-in Daraja and Africa's Talking simulators on a real port, callbacks quick. Without their SMTP
    sink (its own thread, a third of the start-up): the mail tests start ``smtp_sink``."""
    from gateway.devtools.simulators.server import SimulatorServer

    server = SimulatorServer(port=0, callback_delay=0.05, mail=False).start()
    yield server
    server.stop()


@pytest.fixture
def smtp_sink():
    """The built-in SMTP sink (aiosmtpd) on a free port of 127.0.0.1, keeping every mail it is given."""
    from gateway.devtools.simulators.smtp_sink import SmtpSink
    from tests.helpers import free_port

    server = SmtpSink(port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def make_app(config):
    """Build an app with overrides; drains background tasks at the end of the test."""
    from gateway import create_app

    apps = []

    def factory(**kwargs):
        overrides = kwargs.pop("config_overrides", {})
        app = create_app(config.with_overrides(**overrides), **kwargs)
        app.testing = True
        app.test_client_class = ClosingClient
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["lipa"].tasks.drain()
        app.extensions["lipa"].tasks.shutdown()


@pytest.fixture
def app(sim, make_app):  # sim first, so it stops after the app drains its tasks
    """The gateway wired to the simulators; callbacks go nowhere until a live server is started."""
    return make_app(config_overrides={"mpesa_base_url": sim.daraja_url, "at_base_url": sim.at_url})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def quiet_app(make_app):
    """An app for API tests: its dispatcher sends nothing and rate limits are off. A module that overrides
    ``app`` with it gets ``client`` (and ``conn``) on it too."""
    return make_app(dispatcher=QuietDispatcher(), config_overrides={"api_rate_limits": False})


@pytest.fixture
def live(sim, make_app):
    """A live gateway on a real port wired to the simulators, which call it back over HTTP."""
    holder = {}

    def wsgi(environ, start_response):
        return holder["app"](environ, start_response)

    server = LiveServer(wsgi)
    holder["app"] = make_app(config_overrides={
        "mpesa_base_url": sim.daraja_url, "at_base_url": sim.at_url, "public_url": server.url,
    })
    server.app = holder["app"]
    yield server
    server.stop()


@pytest.fixture
def live_process(sim, config, tmp_path):
    """A real gateway process (`run_gateway.py --no-simulators --no-scheduler`) on the test's database, wired
    to the simulators: for the desktop-app tests, whose GUI thread must not share a GIL with the server's
    threads. This process stays bound to the same database, so a test seeds rows as with ``live``."""
    yield from gateway_process_for(sim, config)


def gateway_process_for(sim, config, **settings):
    """live_process's gateway, with extra environment settings (a test that needs, say, a tighter cap)."""
    from tests.gateway_process import GatewayProcess

    gateway = GatewayProcess({
        "DATABASE_URL": config.database_url, "MPESA_BASE_URL": sim.daraja_url, "AT_BASE_URL": sim.at_url,
        "LIPA_DATA_KEY": DATA_KEY, "LIPA_LOOKUP_KEY": LOOKUP_KEY, **settings,
    }, args=("--no-scheduler",), prefix="lipa-gui-")
    gateway.env["LIPA_PUBLIC_URL"] = gateway.url
    gateway.start(timeout=60)
    init_db(config.database_url)
    yield gateway
    gateway.stop()
    print(f"gateway log (last lines):\n{gateway.log_tail(3000)}")  # shown when the test failed
    gateway.cleanup()


@functools.cache
def _password_hash(password: str) -> str:
    """scrypt is slow on purpose; the same staff passwords in every API test need hashing only once."""
    from gateway.backoffice import auth

    return auth.hash_password(password)


def bearer_headers(client) -> dict:
    """Staff of every role plus a merchant key, logged in: {role: {"Authorization": ...}, None: {}}."""
    from gateway.backoffice import auth

    with db.connection_context():
        for role in auth.ROLES:  # the rows create_staff writes, the scrypt hash made once per run
            Staff.create(username=role, password_hash=_password_hash(f"{role}-password"), role=role)
        key = auth.create_api_key("Shop")
    out = {None: {}, "merchant": {"Authorization": f"Bearer {key}"}}
    for role in auth.ROLES:
        token = client.post("/api/v1/auth/login", json={"username": role, "password": f"{role}-password"})
        out[role] = {"Authorization": f"Bearer {token.get_json()['token']}"}
    return out


@pytest.fixture
def as_(client):
    """A bearer header per role (and merchant) on ``client``; as_[None] sends none."""
    return bearer_headers(client)


@pytest.fixture
def conn(app):
    """An open database connection for assertions made outside a request."""
    with db.connection_context():
        yield db
