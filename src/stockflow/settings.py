"""One frozen settings object, read from ``STOCKFLOW_*`` environment variables.

Every field documents its default and its environment variable. Faust and aiokafka arguments
are derived at the edge (:meth:`Settings.faust_kwargs`), so the rest of stockflow never sees an
untyped option dictionary.

Example::

    STOCKFLOW_BROKER=kafka://kafka-1:9092 STOCKFLOW_PARTITIONS=12 faust -A stockflow worker

Invalid values raise :class:`~stockflow.errors.ConfigurationError` with one line per bad
variable, naming it::

    STOCKFLOW_PARTITIONS: Input should be greater than or equal to 1
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stockflow.errors import ConfigurationError

__all__ = ["Settings"]

_ENV_PREFIX = "STOCKFLOW_"

_MIB = 1024 * 1024


def _describe_invalid(exc: ValidationError) -> str:
    """One line per bad variable, ``STOCKFLOW_NAME: what is wrong`` (several faults of one
    variable joined by ``; ``). The values are left out: a bad one may be a secret."""
    faults: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else "*"
        message = error["msg"].removeprefix("Value error, ")
        faults.setdefault(_ENV_PREFIX + field.upper(), []).append(message)
    return "\n".join(
        f"{name}: {'; '.join(dict.fromkeys(messages))}" for name, messages in faults.items()
    )


class Settings(BaseSettings):
    """stockflow's configuration. Immutable; build a new one with :meth:`model_copy`.

    ``Settings()`` reads the environment; keyword arguments override it. Invalid values raise
    :class:`~stockflow.errors.ConfigurationError` (a ``ValueError``), one line per variable."""

    model_config = SettingsConfigDict(env_prefix=_ENV_PREFIX, frozen=True, extra="forbid")

    if not TYPE_CHECKING:
        # At run time only, so that type checkers keep pydantic's per-field signature.
        def __init__(self, **values: Any) -> None:
            try:
                super().__init__(**values)
            except ValidationError as exc:
                # ``from None``: the lines name every bad variable; pydantic's own report (which
                # shows the values) stays reachable as ``__context__``.
                raise ConfigurationError(_describe_invalid(exc)) from None

    # --- identity and broker -------------------------------------------------------------
    app_id: str = "stockflow"
    """Faust app id and consumer group. Default ``stockflow``; env ``STOCKFLOW_APP_ID``."""

    broker: str = "kafka://127.0.0.1:9092"
    """Broker URL(s), ``kafka://host:port[;kafka://host2:port]``. Env ``STOCKFLOW_BROKER``."""

    store: str = "rocksdb://"
    """Table store: ``rocksdb://`` (durable, default) or ``memory://``. Env ``STOCKFLOW_STORE``."""

    datadir: Path | None = None
    """Where RocksDB keeps state; default Faust's ``{app_id}-data``. Env ``STOCKFLOW_DATADIR``."""

    web_port: int = 6066
    """HTTP port of the worker (read model, metrics). Default 6066; env ``STOCKFLOW_WEB_PORT``."""

    web_bind: str = "0.0.0.0"
    """Interface the HTTP server listens on. Default all; env ``STOCKFLOW_WEB_BIND``."""

    web_enabled: bool = True
    """Serve HTTP at all. Default true; env ``STOCKFLOW_WEB_ENABLED``."""

    web_route_timeout: float = Field(default=5.0, gt=0)
    """Seconds a worker waits for the owner of a partition when it forwards a read-model
    request there. Default 5; env ``STOCKFLOW_WEB_ROUTE_TIMEOUT``."""

    http_token: SecretStr | None = None
    """Bearer token the HTTP writes (``POST /orders``, ``/orders/{id}/pay``, ``/cancel``)
    require: ``Authorization: Bearer <token>``, else 401 and nothing is sent. Default none
    (writes open); env ``STOCKFLOW_HTTP_TOKEN``. Never logged (a ``SecretStr``)."""

    http_token_reads: bool = False
    """Require the token for the reads too (``/stock``, ``/orders/{id}``, ``/metrics``,
    ``/openapi.json``). Default false; env ``STOCKFLOW_HTTP_TOKEN_READS``."""

    # --- topics ----------------------------------------------------------------------------
    orders_topic: str = "orders"
    """Input: OrderPlaced/OrderPaid/OrderCancelled keyed by order id.
    Default ``orders``; env ``STOCKFLOW_ORDERS_TOPIC``."""

    inventory_topic: str = "inventory"
    """Input: StockSet/StockAdjusted keyed by product id.
    Default ``inventory``; env ``STOCKFLOW_INVENTORY_TOPIC``."""

    reservations_topic: str = "reservations"
    """Output: decisions keyed by order id.
    Default ``reservations``; env ``STOCKFLOW_RESERVATIONS_TOPIC``."""

    dead_letter_topic: str = "stockflow-dead-letters"
    """Output: inputs that could not be parsed or validated.
    Default ``stockflow-dead-letters``; env ``STOCKFLOW_DEAD_LETTER_TOPIC``."""

    partitions: int = Field(default=8, ge=1, le=1024)
    """Partitions of every stockflow topic. All topics must agree (they are co-partitioned).
    Default 8; env ``STOCKFLOW_PARTITIONS``."""

    replication_factor: int = Field(default=1, ge=1)
    """Replication of the topics stockflow creates.
    Default 1; env ``STOCKFLOW_REPLICATION_FACTOR``."""

    topic_retention: float = Field(default=7 * 24 * 3600.0, gt=0)
    """Seconds the event topics (inputs, outputs, the internal hops) keep records, as the
    ``retention.ms`` of the topics stockflow creates (changelogs are compacted instead).
    Default 7 days; env ``STOCKFLOW_TOPIC_RETENTION``."""

    provision_timeout: float = Field(default=30.0, gt=0)
    """Seconds the worker, ``install()`` and ``stockflow topics`` wait for the broker to
    describe and create topics before they give up with a clear error. Default 30; env
    ``STOCKFLOW_PROVISION_TIMEOUT``."""

    # --- business rules --------------------------------------------------------------------
    reservation_ttl: float = Field(default=900.0, gt=0)
    """Seconds a pending reservation lives before it expires. Default 900; env
    ``STOCKFLOW_RESERVATION_TTL``. An order may ask for a shorter one."""

    saga_timeout: float = Field(default=30.0, gt=0)
    """Seconds a multi-line order waits for all its lines to answer before it is rejected and
    whatever was reserved is released. A single-line order has no deadline: its product writer
    decides and publishes its outcome. Default 30; env ``STOCKFLOW_SAGA_TIMEOUT``."""

    retention: float = Field(default=7 * 24 * 3600.0, gt=0)
    """Seconds a finished reservation or order is kept to answer late duplicates the same way
    before its state is deleted (by each partition's sweep, which runs hourly or once per
    retention if that is shorter: deleted up to that much later). Default 7 days; env
    ``STOCKFLOW_RETENTION``."""

    max_lines: int = Field(default=100, ge=1)
    """Orders with more lines are rejected as ``invalid_order``. Default 100; env
    ``STOCKFLOW_MAX_LINES``."""

    single_line_at_writer: bool = True
    """A single-line order's payment, cancellation and expiry are decided by its product
    writer on the ledger entry (the order desk forwards them; the writer sends no answer for
    a held reservation: a quarter less CPU per order). Set false during a rolling upgrade
    from an older version, whose writers do not know the forwarded commands, until every
    worker runs this one. Default true; env ``STOCKFLOW_SINGLE_LINE_AT_WRITER``."""

    timer_interval: float = Field(default=0.5, gt=0)
    """How often each worker checks its partitions for due timers (expiry, saga deadlines,
    retention). Default 0.5 s; env ``STOCKFLOW_TIMER_INTERVAL``."""

    # --- Faust / aiokafka tuning -------------------------------------------------------------
    session_timeout: float = Field(default=6.0, gt=0)
    """Consumer-group session timeout in seconds. Faust's default (60 s) makes a worker wait
    30-110 s for partitions on tansu; 6 s gives ready-in-seconds while tolerating short event
    loop stalls. Default 6; env ``STOCKFLOW_SESSION_TIMEOUT``."""

    heartbeat_interval: float = Field(default=1.0, gt=0)
    """Default 1 s (a sixth of the session); env ``STOCKFLOW_HEARTBEAT_INTERVAL``. At most a
    third of the session timeout: a worker processes only while its last heartbeat answered is
    less than half a session timeout old (a worker the group dropped must not decide)."""

    rebalance_timeout: float = Field(default=6.0, gt=0)
    """Default 6 s; env ``STOCKFLOW_REBALANCE_TIMEOUT``."""

    commit_interval: float = Field(default=0.5, gt=0)
    """Offset commit interval. Shorter means less reprocessing after a crash (which is always
    safe, only slower). Default 0.5 s; env ``STOCKFLOW_COMMIT_INTERVAL``."""

    fetch_max_wait_ms: int = Field(default=50, ge=0, le=1500)
    """Longest a fetch waits for data. Faust hard-codes 1500 ms, which adds up to ~750 ms to
    every hop on tansu; stockflow's transport applies this instead. Default 50; env
    ``STOCKFLOW_FETCH_MAX_WAIT_MS``."""

    fetch_lanes: bool = True
    """Fetch each stockflow agent's topics on a connection of its own to the broker, with its
    own request in flight (``False``: one fetch request for every topic, aiokafka's way). On
    tansu, which lists a log to answer a fetch, the product commands then no longer wait for
    the ``orders`` partitions' listing (see :mod:`stockflow._faust.lanes`). Costs one
    connection per agent and broker. Applies to the batch consumer (``consumer="batch"``, the
    default). Default true; env ``STOCKFLOW_FETCH_LANES``."""

    local_answers: bool = True
    """Let the order desk apply a line's answer in the worker that decided it, when the
    order's reply partition is active there too, instead of waiting for the answer to come
    back through the broker: one broker hop fewer for a multi-line order's outcome. The answer
    is still published and the desk's writes still go after the writes that decided it (see
    :mod:`stockflow._faust.answers`). Applies to the batch consumer. Default true; env
    ``STOCKFLOW_LOCAL_ANSWERS``."""

    local_commands: bool = True
    """Let a product writer apply a line command in the worker whose order desk published it,
    when the command's partition is active there too, as soon as the broker acknowledges the
    record, instead of waiting for a fetch to bring it back: the record is processed as its
    fetched copy would be (same bytes, offset and timestamp, in log order only), and the copy
    is then skipped (see :mod:`stockflow._faust.commands_here`). Applies to the batch consumer.
    Default true; env ``STOCKFLOW_LOCAL_COMMANDS``."""

    consumer_thread: bool = False
    """Run aiokafka's consumer in Faust's consumer thread (``True``, Faust's way) or as tasks of
    the main event loop (``False``: no loop crossings, no GIL contention at socket operations;
    measured 0.82-0.88x the CPU per order, see :mod:`stockflow._faust.inline`). Default false;
    env ``STOCKFLOW_CONSUMER_THREAD``."""

    producer_linger_ms: int = Field(default=5, ge=0)
    """Producer linger: small batches cost throughput, long ones latency. Default 5 ms; env
    ``STOCKFLOW_PRODUCER_LINGER_MS``."""

    producer_batch_bytes: int = Field(default=256 * 1024, ge=16 * 1024, le=1024 * 1024)
    """Largest record batch the producer builds per topic partition. A processed batch's
    records for one partition go out in as few record batches as fit (aiokafka's default,
    16 KiB, made a flash sale's changelog partition wait for ten sends in turn); brokers accept
    1 MiB by default (``message.max.bytes``). Default 256 KiB; env
    ``STOCKFLOW_PRODUCER_BATCH_BYTES``."""

    internal_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd"
    """Compression of the record batches stockflow writes for itself: product commands, order
    replies and both tables' changelogs, which only stockflow reads. The public outputs
    (reservations, dead letters) keep the producer's setting (Faust's
    ``producer_compression_type``, none by default) so that any consumer reads them. A
    worker at its maximum writes ~2 KB of JSON per multi-line order and the broker's
    acknowledgements fell seconds behind; with zstd the broker's CPU per order fell by about a
    third and the multi-line maximum rose 1.07-1.24x (see docs/benchmarks.md). During a
    rolling upgrade from a version without it, ``none`` until every worker runs this one.
    Default ``zstd``; env ``STOCKFLOW_INTERNAL_COMPRESSION``."""

    output_order: Literal["auto", "client", "acks"] = "auto"
    """When a batch's outputs may go. ``client``: once its changelog writes are in the producer
    (one broker serves them in order); ``acks``: once those are acknowledged (a round trip per
    hop; several brokers may fail one request and serve the other); ``auto``: ``acks`` with
    more than one broker. Default ``auto``; env ``STOCKFLOW_OUTPUT_ORDER``."""

    batch_max_records: int = Field(default=1000, ge=1)
    """Records an agent takes in one batch at most (Faust ``take_events``): the outputs of a
    batch go out together, one internal record per destination partition. Default 1000; env
    ``STOCKFLOW_BATCH_MAX_RECORDS``."""

    batch_within_ms: float = Field(default=5.0, gt=0)
    """Longest a short batch waits for more records: the latency each hop may add under light
    load. Default 5 ms; env ``STOCKFLOW_BATCH_WITHIN_MS``."""

    gc_threshold: int = Field(default=50_000, ge=0)
    """How many more objects than after the last collection make a started worker collect its
    youngest garbage-collector generation, between two processed batches (Python collects it
    every 700 allocations, wherever it is); Python's own trigger stays, at 20 times this, as a
    backstop. The objects that exist once the worker has started are frozen out of collections
    (``gc.freeze``). With Python's defaults collections took ~25% of a loaded worker's CPU;
    collected every 50,000 allocations in the middle of batches, whose objects are all alive
    then, 9-15% (:mod:`stockflow.garbage`). ``0`` leaves the collector as Python set it (for
    an app that tunes it itself). Default 50000; env ``STOCKFLOW_GC_THRESHOLD``."""

    consumer: Literal["batch", "stream"] = "batch"
    """How stockflow's records are consumed. ``batch``: each fetch's records go straight from
    the consumer to the processors, a whole batch at a time (:mod:`stockflow._faust.consumer`);
    ``stream``: through Faust's agents and streams, one record at a time (Faust's own path,
    several times the CPU per record). Default ``batch``; env ``STOCKFLOW_CONSUMER``."""

    standby_replicas: int = Field(default=1, ge=0)
    """Standby copies of each table partition on other workers. Default 1; env
    ``STOCKFLOW_STANDBY_REPLICAS``."""

    fast_restore: bool = True
    """Restore taken-over table partitions by writing fetched changelog batches straight into
    RocksDB before Faust's per-record restore (:mod:`stockflow._faust.fast_restore`; 1,000,000
    products: ~25 s instead of ~11 min). Off: Faust's restore alone. Default true; env
    ``STOCKFLOW_FAST_RESTORE``."""

    # --- running unattended -------------------------------------------------------------------
    crash_exit_timeout: float = Field(default=30.0, gt=0)
    """Seconds a crashed worker (an agent's exception, a failed changelog write, a dead
    service) may spend stopping before the process exits with status 1 anyway: Faust's stop
    can hang forever after a crash, and a hung worker keeps its partitions while nothing
    restarts it. Default 30; env ``STOCKFLOW_CRASH_EXIT_TIMEOUT``."""

    broker_lost_timeout: float = Field(default=60.0, gt=0)
    """Seconds the broker may not answer before the worker crashes (and so exits within
    ``crash_exit_timeout``) instead of waiting forever. Above the outages a worker rides out
    (3-15 s in the chaos suite). Default 60; env ``STOCKFLOW_BROKER_LOST_TIMEOUT``."""

    stop_timeout: float = Field(default=25.0, gt=0)
    """Seconds a graceful stop (SIGTERM, SIGINT) may take before the process exits with
    status 1 anyway. Below Kubernetes' default 30 s grace period. Default 25; env
    ``STOCKFLOW_STOP_TIMEOUT``."""

    ready_max_lag: int = Field(default=10_000, ge=0)
    """``GET /ready`` answers 503 while the records not yet processed in this worker's
    partitions exceed this. Default 10000; env ``STOCKFLOW_READY_MAX_LAG``."""

    # RocksDB keeps one database per table partition (2 tables x the partitions a worker holds,
    # standbys included), and Faust's defaults give each 3 x 64 MiB of write buffers and a
    # 2 GiB block cache. A restore fills every write buffer, so at 1,000,000 products a worker
    # peaked at 730 MiB RSS, most of it memtables. These caps bound it; the cost is more, smaller
    # flushes, which RocksDB does in its own threads (stockflow's writes are Python-bound).
    rocksdb_write_buffer_size: int = Field(default=8 * _MIB, ge=_MIB)
    """Bytes of one RocksDB write buffer (memtable) per partition database. Default 8 MiB
    (Faust's: 64 MiB); env ``STOCKFLOW_ROCKSDB_WRITE_BUFFER_SIZE``."""

    rocksdb_max_write_buffers: int = Field(default=2, ge=2)
    """Write buffers a partition database may hold before writes wait for a flush, so the
    memtables of one database take at most this times the buffer size. Default 2 (Faust's: 3);
    env ``STOCKFLOW_ROCKSDB_MAX_WRITE_BUFFERS``."""

    rocksdb_block_cache_size: int = Field(default=32 * _MIB, ge=0)
    """Bytes of the read cache of one partition database. Default 32 MiB (Faust's: 2 GiB); env
    ``STOCKFLOW_ROCKSDB_BLOCK_CACHE_SIZE``."""

    # Every new order looks up two keys that do not exist yet (its saga, its ledger entry).
    # With Faust's 3 bits a key, about one table file in five answers "maybe" and is searched.
    # Timed inside a worker at 9,000 orders/s after 150,000 orders: a missing ledger key 4.7 us
    # with 3 bits, 1.6 us with 10 (a missing saga key 1.8 / 1.7 us). The worker's CPU per order
    # moved within the noise (0.0788 vs 0.0765 ms, three runs each); the files, and the "maybe"s,
    # grow with a long-running worker's tables.
    rocksdb_bloom_bits: int = Field(default=10, ge=0, le=64)
    """Bits per key of the bloom filter of each table file (RocksDB's usual 10: about 1% of
    lookups of a missing key read the file; Faust's default 3: about 20%). Costs these bits
    per key in memory. Default 10; env ``STOCKFLOW_ROCKSDB_BLOOM_BITS``."""

    # --- security (passed to the client, never logged) ---------------------------------------
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """Env ``STOCKFLOW_SECURITY_PROTOCOL``."""

    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    """Env ``STOCKFLOW_SASL_MECHANISM``."""

    sasl_username: str | None = None
    """Env ``STOCKFLOW_SASL_USERNAME``."""

    sasl_password: SecretStr | None = None
    """Env ``STOCKFLOW_SASL_PASSWORD``; kept as a secret, never printed."""

    ssl_cafile: Path | None = None
    """CA bundle for TLS. Env ``STOCKFLOW_SSL_CAFILE``."""

    ssl_certfile: Path | None = None
    """Client certificate for mutual TLS. Env ``STOCKFLOW_SSL_CERTFILE``."""

    ssl_keyfile: Path | None = None
    """Client key for mutual TLS. Env ``STOCKFLOW_SSL_KEYFILE``."""

    log_json: bool = False
    """Log one JSON object per line (:class:`stockflow.observability.JsonFormatter`) when the
    worker runs as ``faust -A stockflow worker``. Default false; env ``STOCKFLOW_LOG_JSON``."""

    log_decisions: bool = False
    """Log every decision at INFO on ``stockflow.decisions``, one line per (order, product) with
    ``order_id`` and ``product_id`` fields. Off by default: it parses each output once more, and
    off it costs nothing per record. Env ``STOCKFLOW_LOG_DECISIONS``."""

    @model_validator(mode="after")
    def _heartbeats_within_the_session(self) -> Settings:
        if self.heartbeat_interval * 3 > self.session_timeout:
            raise ValueError(
                f"heartbeat_interval ({self.heartbeat_interval} s) must be at most a third of "
                f"session_timeout ({self.session_timeout} s)"
            )
        return self

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if not value.startswith(("rocksdb://", "memory://")):
            raise ValueError("store must be rocksdb:// or memory://")
        return value

    # --- derived names -----------------------------------------------------------------------
    @property
    def product_commands_topic(self) -> str:
        """Internal, keyed by product id: every stock command for one product, in order."""
        return f"{self.app_id}-product-commands"

    @property
    def order_replies_topic(self) -> str:
        """Internal, written to explicit partitions: line answers and timer ticks for sagas."""
        return f"{self.app_id}-order-replies"

    def all_topics(self) -> tuple[str, ...]:
        """Every topic stockflow reads or writes (changelogs are Faust's)."""
        return (
            self.orders_topic,
            self.inventory_topic,
            self.reservations_topic,
            self.dead_letter_topic,
            self.product_commands_topic,
            self.order_replies_topic,
        )

    # --- Faust arguments ----------------------------------------------------------------------
    # Made by stockflow.faust_arguments, imported on first use: importing the settings loads no
    # other stockflow module than stockflow.errors.

    def table_options(self) -> dict[str, Any]:
        """Faust's per-table store ``options`` (its RocksDB store reads them; the memory
        store ignores them). A new dict per call: Faust's RocksDB store pops keys from it."""
        from stockflow.faust_arguments import table_options

        return table_options(self)

    def faust_kwargs(self) -> dict[str, Any]:
        """Arguments for :class:`faust.App`, derived from these settings."""
        from stockflow.faust_arguments import faust_kwargs

        return faust_kwargs(self)
