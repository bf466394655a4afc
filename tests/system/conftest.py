"""Everything in tests/system starts real servers or child processes: marked server, so `-m "not server"`
is the fast subset."""
import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/system/" in str(item.fspath):
            item.add_marker(pytest.mark.server)
