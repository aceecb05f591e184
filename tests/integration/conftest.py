"""Integration tier: a real tansu broker per test, real worker processes, real RocksDB.

Shared assertions live in ``expectations.py`` (imported by name; pytest's conftest modules are
not importable as plain modules when several test folders have one)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
