"""Fixtures shared by the unit tests of the security settings and the plain Kafka clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from certificates import Certificates, make_certificates


@pytest.fixture
def tls(tmp_path: Path) -> Certificates:
    """A throwaway CA, server and client certificate (skips when none can be made)."""
    files = make_certificates(tmp_path / "tls")
    if files is None:
        pytest.skip("no cryptography package and no openssl command to make test certificates")
    return files
