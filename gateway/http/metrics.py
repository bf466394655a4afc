"""GET /metrics for Prometheus: request counts and latency per endpoint, and business numbers read at scrape.

Each app has its own CollectorRegistry (tests build many apps). Request metrics are per process: with
several gunicorn workers each scrape sees one worker's requests (prometheus multiprocess mode is out of
scope). The business numbers are queried from the database at scrape time, so every worker answers the
same. Endpoint labels are Flask endpoint names, never raw paths, so label values stay bounded.

/metrics is for the internal network. The server binds 127.0.0.1 by default; put the public reverse proxy
in front and do not route /metrics through it. As a second guard a request that came through a proxy (it
carries X-Forwarded-For) is answered 404, and with LIPA_METRICS_TOKEN set a scrape must send
``Authorization: Bearer <token>`` (401 otherwise). The business figures are cached for CACHE_S seconds per
process, so scrapes every few seconds (or a stranger hammering the endpoint) cost the database little.
"""
from __future__ import annotations

import hmac
import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import peewee
from flask import Flask, Response, abort, current_app, g, request
from peewee import fn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from gateway.backoffice.stats import callback_lag, parse_period
from shared.models import JobRun, Notification, Payment
from shared.timeutil import utcnow

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CACHE_S = 15.0


def install_metrics(app: Flask) -> CollectorRegistry:
    """Time every request and serve GET /metrics; the registry is app.extensions['lipa_metrics']."""
    if "lipa_metrics" in app.extensions:
        return app.extensions["lipa_metrics"]
    registry = CollectorRegistry()
    labels = ("method", "endpoint", "status")
    requests_total = Counter("lipa_http_requests", "HTTP requests answered.", labels, registry=registry)
    latency = Histogram("lipa_http_request_duration_seconds", "Time to answer an HTTP request.", labels,
                        buckets=LATENCY_BUCKETS, registry=registry)
    business = BusinessCollector()
    registry.register(business)
    app.extensions["lipa_metrics"] = registry
    app.extensions["lipa_metrics_business"] = business

    @app.before_request
    def _start_timer():
        g.lipa_request_started = time.perf_counter()

    children: dict[tuple, tuple] = {}  # labels() takes a lock and checks its arguments: once per key, not per request

    @app.after_request
    def _observe(response):
        started = g.pop("lipa_request_started", None)
        if started is not None:
            key = (request.method, request.endpoint or "unmatched", response.status_code)
            pair = children.get(key)
            if pair is None:
                labels = (key[0], key[1], str(key[2]))
                pair = children.setdefault(key, (requests_total.labels(*labels), latency.labels(*labels)))
            pair[0].inc()
            pair[1].observe(time.perf_counter() - started)
        return response

    app.add_url_rule("/metrics", "metrics", lambda: _scrape(registry), methods=["GET"])
    return registry


def _scrape(registry: CollectorRegistry) -> Response:
    if request.headers.get("X-Forwarded-For"):
        abort(404)
    token = current_app.extensions["lipa"].config.metrics_token
    if token and not hmac.compare_digest(request.headers.get("Authorization", "").encode(),
                                         f"Bearer {token}".encode()):
        log.warning("metrics scrape without the right LIPA_METRICS_TOKEN refused")
        response = Response('{"error": {"code": "unauthorized", "message": "Send Authorization: Bearer '
                            '<LIPA_METRICS_TOKEN>."}}', status=401, mimetype="application/json")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class BusinessCollector:
    """Payments, STK results, callback lag, notifications and job runs, counted when scraped and kept for
    CACHE_S seconds (a failed read is not kept, so a recovered database shows at the next scrape)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, list] | None = None

    def describe(self):
        return []

    def collect(self):
        with self._lock:
            if self._cached is None or self.clock() - self._cached[0] >= CACHE_S:
                families = self._read()
                self._cached = (self.clock(), families) if families else None
            else:
                families = self._cached[1]
        yield from families
        yield GaugeMetricFamily("lipa_metrics_database_up", "1 when the scrape could read the database.",
                                1 if families else 0)

    @staticmethod
    def _read() -> list:
        try:
            return [_payments(), _result_codes(), _callback_lag(), _notifications(), *_jobs()]
        except peewee.PeeweeException as exc:
            log.error("metrics: database query failed (%s)", type(exc).__name__)
            return []


def _today_start():
    """Midnight in Nairobi, as naive UTC."""
    return parse_period({})[0]


def _payments() -> GaugeMetricFamily:
    family = GaugeMetricFamily("lipa_payments", "Payments by status (all time).", labels=["status"])
    query = Payment.select(Payment.status, fn.COUNT(Payment.id)).group_by(Payment.status)
    for status, count in query.tuples():
        family.add_metric([status], count)
    return family


def _result_codes() -> GaugeMetricFamily:
    family = GaugeMetricFamily("lipa_stk_results_today", "STK ResultCodes of payments created today (Nairobi).",
                               labels=["result_code"])
    query = (Payment.select(Payment.result_code, fn.COUNT(Payment.id))
             .where(Payment.created_at >= _today_start(), Payment.result_code.is_null(False))
             .group_by(Payment.result_code))
    for code, count in query.tuples():
        family.add_metric([str(code)], count)
    return family


def _callback_lag() -> GaugeMetricFamily:
    family = GaugeMetricFamily("lipa_callback_lag_seconds", "Seconds from PROCESSING to the STK callback's "
                               "outcome, today's callbacks (Nairobi).", labels=["quantile"])
    lag = callback_lag(_today_start(), utcnow() + timedelta(seconds=1), sample=1000)
    for name, quantile in (("p50", "0.5"), ("p95", "0.95")):
        if lag[name] is not None:
            family.add_metric([quantile], lag[name])
    return family


def _notifications() -> GaugeMetricFamily:
    family = GaugeMetricFamily("lipa_notifications", "Outbox messages (SMS, webhooks) by channel and status.",
                               labels=["channel", "status"])
    query = (Notification.select(Notification.channel, Notification.status, fn.COUNT(Notification.id))
             .group_by(Notification.channel, Notification.status))
    for channel, status, count in query.tuples():
        family.add_metric([channel, status], count)
    return family


def _jobs() -> list[GaugeMetricFamily]:
    runs = GaugeMetricFamily("lipa_job_runs", "Recorded job runs by job and outcome.", labels=["job", "outcome"])
    query = JobRun.select(JobRun.job, JobRun.outcome, fn.COUNT(JobRun.id)).group_by(JobRun.job, JobRun.outcome)
    for job, outcome, count in query.tuples():
        runs.add_metric([job, outcome], count)
    last = GaugeMetricFamily("lipa_job_last_started_timestamp_seconds", "When each job last started (Unix time).",
                             labels=["job"])
    for job, started in JobRun.select(JobRun.job, fn.MAX(JobRun.started_at)).group_by(JobRun.job).tuples():
        last.add_metric([job], _unix(started))
    return [runs, last]


def _unix(value) -> float:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=timezone.utc).timestamp()
