"""The app-wide error answers (gateway/web.py): whatever goes wrong below a route, the caller gets the one
JSON error shape with a fitting status and never a traceback, and staff get the detail in the log."""
from __future__ import annotations

import logging

import peewee
import pytest

from gateway.backoffice import auth
from gateway.jobs import runner
from shared.db import db


@pytest.fixture
def viewer(client):
    with db.connection_context():
        auth.create_staff("vera", "vera-password", "viewer")
    token = client.post("/api/v1/auth/login", json={"username": "vera", "password": "vera-password"})
    return {"Authorization": f"Bearer {token.get_json()['token']}"}


def test_an_unexpected_error_is_a_500_in_the_error_shape_without_details(client, viewer, monkeypatch, caplog):
    def broken(config):
        raise KeyError("internal detail 0722000111")

    monkeypatch.setattr(runner, "job_stats", broken)
    with caplog.at_level(logging.ERROR, logger="gateway.http.errors"):
        response = client.get("/api/v1/jobs", headers=viewer)
    assert response.status_code == 500
    assert response.get_json() == {"error": {"code": "internal_error",
                                             "message": "Something went wrong; it has been logged."}}
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and "internal detail" not in body
    assert "unexpected error on GET /api/v1/jobs" in caplog.text and "KeyError" in caplog.text


@pytest.mark.parametrize("error", [peewee.OperationalError("could not connect to server"),
                                   peewee.InterfaceError("connection already closed")])
def test_a_database_failure_is_a_503_asking_to_retry(client, viewer, monkeypatch, caplog, error):
    def away(config):
        raise error

    monkeypatch.setattr(runner, "job_stats", away)
    with caplog.at_level(logging.ERROR, logger="gateway.http.errors"):
        response = client.get("/api/v1/jobs", headers=viewer)
    assert response.status_code == 503
    assert response.get_json()["error"] == {"code": "unavailable", "message": "The service is busy; please retry."}
    assert f"database unavailable on GET /api/v1/jobs: {type(error).__name__}" in caplog.text
    assert "could not connect" not in response.get_data(as_text=True)


def test_the_app_answers_again_after_a_failed_request(client, viewer, monkeypatch):
    """The failed request's connection is closed at teardown; the next request opens a working one."""
    original = runner.job_stats
    monkeypatch.setattr(runner, "job_stats", lambda config: (_ for _ in ()).throw(peewee.OperationalError("gone")))
    assert client.get("/api/v1/jobs", headers=viewer).status_code == 503
    monkeypatch.setattr(runner, "job_stats", original)
    response = client.get("/api/v1/jobs", headers=viewer)
    assert response.status_code == 200 and len(response.get_json()["items"]) == len(runner.registry.names())


@pytest.mark.parametrize("method,path,status,code", [
    ("GET", "/no/such/page", 404, "not_found"),
    ("DELETE", "/healthz", 405, "method_not_allowed"),
])
def test_http_errors_use_the_same_shape(client, method, path, status, code):
    response = client.open(path, method=method)
    assert response.status_code == status and response.get_json()["error"]["code"] == code
