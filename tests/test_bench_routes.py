"""GET/POST /bench/hello, the benchmarks' floor: only with LIPA_BENCH_ENDPOINTS=1, and it opens no database."""
from shared.config import load_config
from shared.db import db


def test_absent_unless_switched_on(make_app):
    assert load_config({"LIPA_BENCH_ENDPOINTS": "1"}, read_dotenv=False).bench_endpoints
    assert not load_config({}, read_dotenv=False).bench_endpoints
    client = make_app().test_client()
    assert client.get("/bench/hello").status_code == 404


def test_hello_touches_no_database(make_app, monkeypatch):
    client = make_app(config_overrides={"bench_endpoints": True}).test_client()

    def refuse(*args, **kwargs):
        raise AssertionError("the floor must not open a database connection")

    monkeypatch.setattr(db.obj, "connect", refuse)
    for answer in (client.get("/bench/hello"), client.post("/bench/hello", data={"text": "1*2"})):
        assert (answer.status_code, answer.get_data(as_text=True), answer.mimetype) == (200, "hello", "text/plain")
