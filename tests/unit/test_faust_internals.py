"""The private names of Faust and aiokafka that stockflow relies on exist in the pinned
versions, and a missing one is a clear DependencyError, not a broken rebalance later."""

from __future__ import annotations

import re

import pytest

from stockflow import Settings, create_app
from stockflow._faust import internals
from stockflow.errors import DependencyError, StockflowError


def test_every_internal_exists_in_the_installed_versions() -> None:
    assert internals.missing_internals() == []


def test_a_missing_internal_names_itself_and_the_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        internals,
        "REQUIRED",
        (*internals.REQUIRED, ("faust.transport.consumer", "Consumer", ("_gone_in_0_16",))),
    )
    with pytest.raises(DependencyError) as caught:
        internals.check_internals()
    message = str(caught.value)
    assert "faust.transport.consumer.Consumer._gone_in_0_16" in message
    assert "faust-streaming 0.15.3" in message and "aiokafka 0.14.0" in message
    assert (
        "pip install 'faust-streaming==0.15.3' 'aiokafka==0.14.0' 'mode-streaming==0.7.1'"
        in message
    )
    assert isinstance(caught.value, StockflowError)


def test_building_an_app_checks_them_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        internals, "REQUIRED", (("aiokafka.client", "AIOKafkaClient", ("_removed",)),)
    )
    with pytest.raises(DependencyError, match=r"AIOKafkaClient\._removed"):
        create_app(Settings(app_id="internals", store="memory://", web_enabled=False))


def test_the_pinned_versions_are_the_ones_pyproject_installs() -> None:
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    # Extras (aiokafka[zstd]) do not change the version pinned.
    pins = {re.sub(r"\[[^]]*\]", "", dependency) for dependency in dependencies}
    for name, version in internals.PINNED.items():
        assert f"{name}=={version}" in pins
