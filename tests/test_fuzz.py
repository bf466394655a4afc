"""Hostile input on every provider endpoint (issue 7): a small deterministic seed set per endpoint.

The properties are in tests/fuzz_harness.py: no 5xx, the documented answer shape, no traceback or
ERROR in the log, no state change from invalid input. bench/fuzz_bench.py runs the same strategies
10,000 times per endpoint.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.conftest import QuietDispatcher
from tests.fuzz_harness import Harness, StubDaraja
from tests.fuzz_strategies import ENDPOINTS, TOKEN

EXAMPLES = 150
CI_SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))


@pytest.fixture
def harness(make_app):
    app = make_app(daraja=StubDaraja(), dispatcher=QuietDispatcher(),
                   config_overrides={"mpesa_callback_token": TOKEN,
                                     "api_rate_limits": False})  # wrong tokens stay 404s, never 429s
    harness = Harness(app)
    yield harness
    harness.close()


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # a failing 64 kB body, when reported
@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_hostile_input_is_answered_safely(harness, endpoint):
    """Each example must break none of the properties; the database carries over between examples."""

    @CI_SETTINGS
    @given(req=ENDPOINTS[endpoint])
    def hostile(req):
        assert harness.run(req)[1] == {}, repr(req)

    hostile()
    assert harness.counts[endpoint] >= EXAMPLES
    assert harness.check_payments() == []
