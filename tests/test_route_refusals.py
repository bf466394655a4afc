"""The staff routes added for money integrity refuse a stranger: no token is a 401 JSON error, never a 500."""
import pytest


@pytest.mark.parametrize("method, path", [
    ("get", "/api/v1/approvals"),
    ("post", "/api/v1/approvals/1"),
    ("post", "/api/v1/payments/1/flag"),
    ("post", "/api/v1/payments/1/resolve"),
    ("post", "/api/v1/reconciliation/exceptions/1/confirm"),
])
def test_a_stranger_gets_401(client, method, path):
    answer = getattr(client, method)(path, json={"action": "clear", "reason": "x"})
    assert answer.status_code == 401 and answer.get_json()["error"]["code"]
