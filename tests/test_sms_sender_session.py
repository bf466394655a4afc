"""The SMS sender's kept-alive session reads the environment's proxy and CA settings once, when it is made,
and keeps honouring them (requests would read the whole environment on every request otherwise)."""
from gateway.providers.africastalking import _session_for

URL = "https://api.africastalking.com/version1/messaging"


def test_a_proxy_and_ca_bundle_from_the_environment_are_kept(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = _session_for(URL)
    assert session.proxies.get("https") == "http://127.0.0.1:3128"
    assert session.verify == str(bundle)
    assert session.trust_env is False  # not read again per request


def test_no_proxy_for_the_host_means_none(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "api.africastalking.com")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = _session_for(URL)
    assert "https" not in session.proxies and session.verify is True
