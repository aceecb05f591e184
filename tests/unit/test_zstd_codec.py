"""aiokafka's zstd record batches on reused contexts (stockflow._faust.zstd): the same bytes
on the wire for every reader, whichever thread compresses or decompresses."""

from __future__ import annotations

import threading

import cramjam
import zstandard
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record import default_records
from aiokafka.record.default_records import DefaultRecordBatch

from stockflow._faust.zstd import RECORD_MODULES, ZstdCodec, use_reused_contexts


def _batch(records: list[bytes]) -> bytes:
    builder = BatchBuilder(1 << 20, DefaultRecordBatch.CODEC_ZSTD)
    for i, value in enumerate(records):
        builder.append(timestamp=None, key=b"k%d" % i, value=value, headers=[("h", b"1")])
    return bytes(builder._build())


def test_record_batches_use_the_reused_contexts_and_read_back_as_before() -> None:
    assert use_reused_contexts() is True
    assert use_reused_contexts() is True  # once: a second call changes nothing
    import importlib

    for name in RECORD_MODULES:
        module = importlib.import_module(name)
        assert getattr(module.zstd_encode, "__self__", None).__class__ is ZstdCodec
    values = [b'{"type":"LineAnswer","order_id":"o%d"}' % i for i in range(20)]
    raw = _batch(values)
    batch = DefaultRecordBatch(raw)
    assert batch.compression_type == DefaultRecordBatch.CODEC_ZSTD
    assert [record.value for record in batch] == values
    # The records section is one ordinary zstd frame: aiokafka's own codec (cramjam) reads it.
    frame = raw[61:]  # after the v2 batch header
    decoded = bytes(cramjam.zstd.decompress(frame))
    assert all(value in decoded for value in values)


def test_what_zstandard_cannot_read_in_one_call_is_read_by_aiokafka_s_own_function() -> None:
    use_reused_contexts()
    data = b"a streaming producer's batch " * 40
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    assert default_records.zstd_decode(frame) == data
    # Two frames in one payload: zstandard alone would return the first and drop the second.
    two = zstandard.ZstdCompressor().compress(b"first ") + zstandard.ZstdCompressor().compress(b"x")
    assert default_records.zstd_decode(two) == b"first x"


def test_each_thread_gets_contexts_of_its_own() -> None:
    codec = ZstdCodec(lambda payload: bytes(cramjam.zstd.decompress(payload)))
    payload = b"x" * 1000
    results: list[bytes] = []

    def work() -> None:
        for _ in range(200):
            results.append(codec.decode(codec.encode(payload)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 800 and set(results) == {payload}
    assert codec.decode(codec.encode(payload, level=1)) == payload  # another level: one-off
