"""The private names of Faust and aiokafka that stockflow patches, calls or reads, checked at
startup.

stockflow works around measured defects and costs inside faust-streaming, mode and aiokafka
(the modules of :mod:`stockflow._faust`: the transport and consumer, the consumer on the main
loop, the fetch lanes, the batch processor and sender, the changelog writer, the recovery and
the batch restore, the zstd codec; and :mod:`stockflow.tables.store`).
Those names are not public API: another release may rename or drop one, and the workaround
would then fail in the middle of a rebalance or a restore, or silently stop working. So every
name is listed here and :func:`check_internals` runs before an app is built; a missing one
stops the worker at once with the list of what is missing and the versions stockflow was
written against.
"""

from __future__ import annotations

import importlib
from importlib import metadata

from stockflow.errors import DependencyError

__all__ = ["PINNED", "REQUIRED", "check_internals", "missing_internals"]

PINNED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}
"""The versions every workaround was measured on (``pyproject.toml`` pins them)."""

REQUIRED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "faust.transport.consumer",
        "Consumer",
        (
            "getmany",
            "_wait_next_records",
            "_new_offset",
            "_add_gap",
            "_filter_committable_offsets",
            "wait_empty",
            "on_partitions_revoked",
            "perform_seek",
            "seek",
        ),
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        ("_to_message", "_new_consumer_thread", "highwater", "_commit"),
    ),
    (
        "faust.transport.drivers.aiokafka",
        "AIOKafkaConsumerThread",
        (
            "_create_worker_consumer",
            "_highwaters",
            "_ensure_consumer",
            "call_thread",
            "on_partitions_assigned",
        ),
    ),
    ("faust.transport.drivers.aiokafka", "Producer", ("_ensure_producer", "flush")),
    (
        "mode.threads",
        "ServiceThread",
        (
            "_serve",
            "_gather_remaining_tasks",
            "on_thread_started",
            "_thread_running",
        ),
    ),
    ("faust.transport.producer", "ProducerBuffer", ("put", "flush", "_send_pending")),
    (
        "faust.tables.recovery",
        "Recovery",
        (
            "_build_offsets",
            "on_recovery_completed",
            "_set_recovery_ended",
            "_wait",
            "in_recovery",
            "standby_remaining_total",
        ),
    ),
    ("faust.tables.manager", "TableManager", ("recovery", "on_standbys_ready")),
    (
        "faust.stores.rocksdb",
        "Store",
        ("_db_for_partition", "set_persisted_offset", "partition_path", "offset_key"),
    ),
    ("aiokafka.producer.producer", "AIOKafkaProducer", ("send_batch",)),
    ("aiokafka.producer.sender", "Sender", ("_send_produce_req",)),
    (
        "aiokafka.consumer.group_coordinator",
        "GroupCoordinator",
        ("_do_heartbeat", "_on_join_complete", "request_rejoin"),
    ),
    ("aiokafka.client", "AIOKafkaClient", ("_wait_on_metadata", "coordinator_lookup", "send")),
    (
        "aiokafka.consumer.fetcher",
        "Fetcher",
        ("_select_read_replica", "_invalidate_preferred_read_replica_for_node"),
    ),
    ("aiokafka.producer.message_accumulator", "BatchBuilder", ("append", "close", "closed")),
    ("aiokafka.producer.message_accumulator", "MessageBatch", ("remaining_linger",)),
    (
        "aiokafka.record.default_records",
        "DefaultRecordBatch",
        ("CODEC_NONE", "CODEC_GZIP", "CODEC_SNAPPY", "CODEC_LZ4", "CODEC_ZSTD"),
    ),
)
"""``(module, class, attributes)``: each attribute must exist on the class."""

MODULE_NAMES: tuple[tuple[str, str], ...] = (
    ("faust.transport.drivers.aiokafka", "credentials_to_aiokafka_auth"),
    ("faust.transport.drivers.aiokafka", "server_list"),
    # Replaced by stockflow._faust.zstd (the C extension's module has the same two names).
    ("aiokafka.record.default_records", "zstd_encode"),
    ("aiokafka.record.default_records", "zstd_decode"),
)
"""``(module, name)``: module-level functions stockflow calls or replaces."""

CONSUMER_STATE = (
    "_read_offset",
    "_acked",
    "_committed_offset",
    "_buffered_partitions",
    "_active_partitions",
)
"""Attributes a started Faust consumer has (checked on the instance, see
:meth:`stockflow._faust.consumer.BatchConsumer.__init__`)."""


def missing_internals() -> list[str]:
    """``module.Class.attribute`` for every required name that is not there."""
    missing: list[str] = []
    for module_name, class_name, attributes in REQUIRED:
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}.{class_name}")
            continue
        missing.extend(
            f"{module_name}.{class_name}.{name}" for name in attributes if not hasattr(cls, name)
        )
    for module_name, name in MODULE_NAMES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            missing.append(module_name)
            continue
        if not hasattr(module, name):
            missing.append(f"{module_name}.{name}")
    return missing


def check_internals(missing: list[str] | None = None) -> None:
    """Raise :class:`DependencyError` naming every missing internal, the installed versions
    and the ones stockflow was written for."""
    missing = missing_internals() if missing is None else missing
    if missing:
        raise DependencyError(_explain(missing))


def _explain(missing: list[str]) -> str:
    installed = ", ".join(f"{name} {_version(name)}" for name in PINNED)
    pinned = ", ".join(f"{name} {version}" for name, version in PINNED.items())
    return (
        f"stockflow relies on internals of Faust and aiokafka that this installation lacks: "
        f"{', '.join(missing)}. Installed: {installed}; stockflow is written for {pinned}. "
        f"Install those versions (pip install "
        + " ".join(f"'{name}=={version}'" for name, version in PINNED.items())
        + ")."
    )


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"
