"""The callback token when MPESA_CALLBACK_TOKEN is not set (local profile): one random token kept with the
database, so a restarted gateway (or a second process) accepts callbacks for pushes sent before it."""
from __future__ import annotations

from gateway.providers.daraja.urls import SETTING_KEY
from shared.db import db
from shared.models import Setting


def test_an_unset_token_is_made_once_and_kept_with_the_database(make_app):
    first = make_app(config_overrides={"mpesa_callback_token": ""}).extensions["lipa"]
    again = make_app(config_overrides={"mpesa_callback_token": ""}).extensions["lipa"]  # a restart
    assert len(first.callback_token) >= 24 and again.callback_token == first.callback_token
    assert again.stk_callback_url.endswith(f"/mpesa/stk/callback/{first.callback_token}")
    with db.connection_context():
        assert [s.value for s in Setting.select().where(Setting.key == SETTING_KEY)] == [first.callback_token]


def test_the_kept_token_is_the_one_callbacks_must_carry(make_app):
    client = make_app(config_overrides={"mpesa_callback_token": ""}).test_client()
    assert client.post("/mpesa/stk/callback/not-the-token", json={}).status_code == 404  # as if no such URL
    with db.connection_context():
        token = Setting.get(Setting.key == SETTING_KEY).value
    answer = client.post(f"/mpesa/stk/callback/{token}", json={"Body": {}})
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "malformed_callback"  # let in


def test_a_configured_token_wins_over_the_kept_one(make_app, config):
    make_app(config_overrides={"mpesa_callback_token": ""})
    services = make_app().extensions["lipa"]
    assert services.callback_token == config.mpesa_callback_token
