"""BatchSender compresses the record batches of stockflow's internal topics and changelogs
(Settings.internal_compression) and leaves the public outputs as the producer is configured:
checked on the bytes aiokafka would send, read back as a consumer reads them."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from stockflow._faust.producing import BatchSender
from stockflow.errors import DependencyError
from stockflow.settings import Settings

BATCH_BYTES = 256 * 1024


class RecordingProducer:
    """aiokafka's ``send_batch``: keeps each batch as handed, to be read back built."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, int, BatchBuilder]] = []

    def _ensure_producer(self) -> RecordingProducer:
        return self

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        self.batches.append((topic, partition, builder))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(offset=0))
        return done


def sent_batches(
    compression: str, producer_compression: str | None = None
) -> dict[str, DefaultRecordBatch]:
    producer = RecordingProducer()
    conf = SimpleNamespace(
        producer_max_batch_size=BATCH_BYTES, producer_compression_type=producer_compression
    )
    app = SimpleNamespace(producer=producer, conf=conf)
    sender = BatchSender(app, compression=compression, public=("reservations", "dead-letters"))
    value = b'{"type":"Reserve","order_id":"o-1","product_id":"p-1","quantity":1}' * 20
    records = [
        ("stockflow-product-commands", 3, b"p-1", value),
        ("stockflow-stockflow-products-changelog", 3, b"s:3:p-1", value),
        ("stockflow-stockflow-products-changelog", 3, b"t:00003:gone", None),
        ("reservations", 1, b"o-1", value),
        ("dead-letters", 0, None, value),
    ]

    async def send() -> None:
        await sender.send(records)
        await sender.flushed()

    asyncio.run(send())
    batches = {}
    for topic, _partition, builder in producer.batches:
        # The bytes aiokafka puts in the produce request (what BatchBuilder.close leaves).
        batch = DefaultRecordBatch(bytearray(builder._build()))
        batches[topic] = batch
        read = [(record.key, record.value) for record in batch]
        assert read == [(key, value) for t, _p, key, value in records if t == topic]
    return batches


def test_internal_topics_and_changelogs_are_compressed_and_public_outputs_are_not() -> None:
    batches = sent_batches("zstd")
    codecs = {topic: batch.compression_type for topic, batch in batches.items()}
    assert codecs == {
        "stockflow-product-commands": DefaultRecordBatch.CODEC_ZSTD,
        "stockflow-stockflow-products-changelog": DefaultRecordBatch.CODEC_ZSTD,
        "reservations": DefaultRecordBatch.CODEC_NONE,
        "dead-letters": DefaultRecordBatch.CODEC_NONE,
    }


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4"])
def test_every_codec_the_setting_names_is_written_and_read_back(compression: str) -> None:
    codec = getattr(DefaultRecordBatch, f"CODEC_{compression.upper()}")
    assert sent_batches(compression)["stockflow-product-commands"].compression_type == codec


def test_none_leaves_every_batch_as_the_producer_builds_it() -> None:
    batches = sent_batches("none")
    assert {batch.compression_type for batch in batches.values()} == {DefaultRecordBatch.CODEC_NONE}


def test_public_outputs_are_compressed_as_the_producer_is_configured() -> None:
    # Faust's producer_compression_type, as aiokafka's own batches of the producer would be.
    batches = sent_batches("zstd", producer_compression="gzip")
    assert batches["reservations"].compression_type == DefaultRecordBatch.CODEC_GZIP
    assert batches["dead-letters"].compression_type == DefaultRecordBatch.CODEC_GZIP
    assert batches["stockflow-product-commands"].compression_type == DefaultRecordBatch.CODEC_ZSTD
    none = sent_batches("none", producer_compression="lz4")
    assert {batch.compression_type for batch in none.values()} == {DefaultRecordBatch.CODEC_LZ4}


def test_the_default_is_zstd_and_a_missing_codec_library_is_named(monkeypatch: Any) -> None:
    assert Settings().internal_compression == "zstd"
    from stockflow._faust import producing

    monkeypatch.setitem(producing.CODECS, "zstd", (lambda: False, DefaultRecordBatch.CODEC_ZSTD))
    with pytest.raises(DependencyError, match="cramjam"):
        BatchSender(SimpleNamespace(), compression="zstd")
