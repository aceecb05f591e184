"""pytest fixtures for testing services against stockflow (registered as a ``pytest11`` entry
point, so installing stockflow makes them available).

``stockflow_harness``: an embedded broker with every stockflow topic, stopped after the test;
start workers with ``stockflow_harness.start_worker()``. It needs the embedded broker
(``pip install 'stockflow[embedded]'``); without it a test using it fails with one line that
says so.
``stockflow_worker``: the harness with one worker running.
``stockflow_pipeline``: an in-process pipeline running the same decision code, no broker.
``stockflow_replay``: ``replay(lines) -> list[dict]``, a recording's outputs computed offline.
Assertions on outcomes: :mod:`stockflow.testing.assertions`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stockflow.testing.broker import embedded_broker_missing
from stockflow.testing.harness import Harness
from stockflow.testing.worker import WorkerProcess

__all__ = ["stockflow_harness", "stockflow_pipeline", "stockflow_replay", "stockflow_worker"]


@pytest.fixture
def stockflow_harness(tmp_path: Path) -> Iterator[Harness]:
    missing = embedded_broker_missing()
    if missing is not None:  # one line, not a traceback from deep in the harness
        pytest.fail(f"stockflow_harness: {missing}", pytrace=False)
    harness = Harness(workdir=tmp_path)
    with harness:
        yield harness


@pytest.fixture
def stockflow_worker(stockflow_harness: Harness) -> WorkerProcess:
    return stockflow_harness.start_worker()


@pytest.fixture
def stockflow_pipeline() -> object:
    from stockflow.processing.pipeline import LocalPipeline

    return LocalPipeline()


@pytest.fixture
def stockflow_replay() -> object:
    """Replays recorded lines offline and returns the output records as dicts."""
    import json

    from stockflow.replay import replay_lines

    def replay(lines: list[str], **kwargs: object) -> list[dict[str, object]]:
        return [json.loads(line) for line in replay_lines(lines, **kwargs)]  # type: ignore[arg-type]

    return replay
