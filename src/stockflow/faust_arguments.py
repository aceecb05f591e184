"""The arguments Faust gets from :class:`~stockflow.settings.Settings`: the app's and each
table store's.

Separate from the settings themselves, which only read and check ``STOCKFLOW_*`` variables:
this is the edge where they become Faust's untyped option dictionaries and objects (Faust and
aiokafka are imported only when it runs). :meth:`Settings.faust_kwargs` and
:meth:`Settings.table_options` are the way in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stockflow.settings import Settings

__all__ = ["faust_kwargs", "table_options"]

_MS = 1000


def table_options(settings: Settings) -> dict[str, Any]:
    """:meth:`Settings.table_options`: a new dict per call."""
    return {
        "write_buffer_size": settings.rocksdb_write_buffer_size,
        "max_write_buffer_number": settings.rocksdb_max_write_buffers,
        "block_cache_size": settings.rocksdb_block_cache_size,
        "bloom_filter_size": settings.rocksdb_bloom_bits,
    }


def faust_kwargs(settings: Settings) -> dict[str, Any]:
    """:meth:`Settings.faust_kwargs`: the arguments for :class:`faust.App`."""
    kwargs: dict[str, Any] = {
        "id": settings.app_id,
        "broker": settings.broker,
        "store": settings.store,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "table_standby_replicas": settings.standby_replicas,
        "broker_session_timeout": settings.session_timeout,
        "broker_heartbeat_interval": settings.heartbeat_interval,
        "broker_rebalance_timeout": settings.rebalance_timeout,
        "broker_commit_interval": settings.commit_interval,
        "producer_linger": settings.producer_linger_ms / _MS,
        "producer_max_batch_size": settings.producer_batch_bytes,
        # acks=all: a decision is only committed once every replica has it.
        "producer_acks": -1,
        "web_port": settings.web_port,
        "web_bind": settings.web_bind,
        "web_enabled": settings.web_enabled,
        "web_in_thread": False,
        # Decisions are events on topics; nothing is served from Faust's key/value JSON.
        "value_serializer": "raw",
        "key_serializer": "raw",
    }
    if settings.datadir is not None:
        kwargs["datadir"] = str(settings.datadir)
    if settings.log_json:
        from stockflow.observability.logs import json_logging_config

        kwargs["logging_config"] = json_logging_config()
    kwargs.update(_security_kwargs(settings))
    return kwargs


def _security_kwargs(settings: Settings) -> dict[str, Any]:
    import faust  # the edge: only here do settings become Faust objects

    ssl_context = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        ssl_context = create_ssl_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None,
            certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
            keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        )
    if settings.security_protocol.startswith("SASL"):
        from stockflow.observability.logs import redact_sasl_tokens

        redact_sasl_tokens()
        mechanism = settings.sasl_mechanism or "PLAIN"
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
        credentials = faust.SASLCredentials(
            username=settings.sasl_username or "",
            password=password,
            mechanism=mechanism,
            ssl_context=ssl_context,
        )
        return {"broker_credentials": credentials}
    if ssl_context is not None:
        return {"broker_credentials": faust.SSLCredentials(ssl_context)}
    return {}
