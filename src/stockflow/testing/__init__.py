"""Test and demo helpers: an embedded Kafka-protocol broker, worker processes, topic I/O.

``pytest`` users get fixtures from :mod:`stockflow.testing.plugin` (registered as a ``pytest11``
entry point).
"""

from stockflow.testing.assertions import assert_one_outcome_each, outcome_of
from stockflow.testing.broker import EmbeddedBroker, free_port
from stockflow.testing.topics import Record, produce, read_topic, read_topics, wait_for
from stockflow.testing.worker import WorkerProcess, fast_test_env

__all__ = [
    "EmbeddedBroker",
    "Record",
    "WorkerProcess",
    "assert_one_outcome_each",
    "fast_test_env",
    "free_port",
    "outcome_of",
    "produce",
    "read_topic",
    "read_topics",
    "wait_for",
]
