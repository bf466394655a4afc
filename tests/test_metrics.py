"""GET /metrics: Prometheus text with request and business metrics, a registry per app."""
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.http.metrics import install_metrics
from shared.db import db
from shared.models import JobRun, Notification, Payment, PaymentEvent
from shared.timeutil import utcnow
from tests.conftest import QuietDispatcher

NAMES = ("lipa_http_requests", "lipa_http_request_duration_seconds", "lipa_payments", "lipa_stk_results_today",
         "lipa_callback_lag_seconds", "lipa_notifications", "lipa_job_runs", "lipa_metrics_database_up")


@pytest.fixture
def app(make_app):
    app = make_app(dispatcher=QuietDispatcher())
    install_metrics(app)  # a no-op once create_app installs it
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def scrape(client) -> dict:
    """{(name, labels as a sorted tuple): value} of every sample."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def names(samples: dict) -> set:
    return {name for name, _ in samples}


def test_exposes_every_metric_family(client):
    text = client.get("/metrics").get_data(as_text=True)
    for name in NAMES:
        assert f"# TYPE {name}" in text
    assert "lipa_metrics_database_up 1.0" in text


def test_a_request_is_counted_by_endpoint_name(client):
    client.get("/healthz")
    client.get("/no/such/path/123")
    samples = scrape(client)
    key = (("endpoint", "health.healthz"), ("method", "GET"), ("status", "200"))
    assert samples[("lipa_http_requests_total", key)] == 1.0
    assert samples[("lipa_http_request_duration_seconds_count", key)] == 1.0
    unmatched = (("endpoint", "unmatched"), ("method", "GET"), ("status", "404"))
    assert samples[("lipa_http_requests_total", unmatched)] == 1.0
    assert not any("/no/such" in str(labels) for _, labels in samples)


def seed():
    now = utcnow()
    with db.connection_context():
        rows = [Payment.create(reference=f"LP{n}", phone=f"25470000000{n}", amount=10, account="A", channel="api",
                               status=status, result_code=code)
                for n, (status, code) in enumerate([("COMPLETED", "0"), ("FAILED", "1"), ("CANCELLED", "1032"),
                                                    ("CANCELLED", "1032")])]
        PaymentEvent.create(payment=rows[0], from_status="PENDING", to_status="PROCESSING", actor="t",
                            created_at=now - timedelta(seconds=10))
        PaymentEvent.create(payment=rows[0], from_status="PROCESSING", to_status="COMPLETED", actor="t",
                            created_at=now - timedelta(seconds=6))
        Notification.create(channel="sms", kind="k", recipient="254700000000", body="x", status="SENT")
        Notification.create(channel="sms", kind="k", recipient="254700000000", body="x", status="FAILED")
        JobRun.create(job="retention", worker="w", outcome="OK")
        JobRun.create(job="retention", worker="w", outcome="FAILED")


def test_business_numbers_are_read_at_scrape_time(client):
    seed()
    samples = scrape(client)
    assert samples[("lipa_payments", (("status", "CANCELLED"),))] == 2.0
    assert samples[("lipa_stk_results_today", (("result_code", "1032"),))] == 2.0
    assert samples[("lipa_notifications", (("channel", "sms"), ("status", "FAILED")))] == 1.0
    assert samples[("lipa_job_runs", (("job", "retention"), ("outcome", "OK")))] == 1.0
    assert ("lipa_job_last_started_timestamp_seconds", (("job", "retention"),)) in samples
    assert samples[("lipa_callback_lag_seconds", (("quantile", "0.5"),))] == pytest.approx(4.0, abs=0.01)


def test_through_the_public_proxy_it_is_not_found(client):
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 404


def test_each_app_has_its_own_registry(make_app):
    first, second = make_app(dispatcher=QuietDispatcher()), make_app(dispatcher=QuietDispatcher())
    assert install_metrics(first) is not install_metrics(second)
    assert install_metrics(first) is install_metrics(first)
    first.test_client().get("/healthz")
    assert ("lipa_http_requests_total", (("endpoint", "health.healthz"), ("method", "GET"), ("status", "200"))) \
        not in scrape(second.test_client())


def test_a_database_failure_still_answers(client, monkeypatch):
    import peewee

    def broken(*args, **kwargs):
        raise peewee.OperationalError("down")

    monkeypatch.setattr("gateway.http.metrics._payments", broken)
    samples = scrape(client)
    assert samples[("lipa_metrics_database_up", ())] == 0.0 and "lipa_payments" not in names(samples)


def test_business_figures_are_cached_for_15_seconds(app, client):
    business, now = app.extensions["lipa_metrics_business"], [1000.0]
    business.clock = lambda: now[0]
    assert ("lipa_payments", (("status", "CANCELLED"),)) not in scrape(client)
    seed()
    now[0] += 14.9
    assert ("lipa_payments", (("status", "CANCELLED"),)) not in scrape(client)  # the cached figures
    now[0] += 0.2
    assert scrape(client)[("lipa_payments", (("status", "CANCELLED"),))] == 2.0


def test_with_a_metrics_token_a_scrape_must_bring_it(make_app):
    secret = "metrics-token-0123456789"
    client = make_app(dispatcher=QuietDispatcher(), config_overrides={"metrics_token": secret}).test_client()
    for header in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": secret}):
        refused = client.get("/metrics", headers=header)
        assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "unauthorized"
        assert "lipa_payments" not in refused.get_data(as_text=True)
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {secret}"})
    assert ok.status_code == 200 and "lipa_metrics_database_up 1.0" in ok.get_data(as_text=True)
