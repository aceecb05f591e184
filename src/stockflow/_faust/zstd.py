"""zstd record batches on a reused context: aiokafka's codec, without its fixed cost per batch.

aiokafka compresses and decompresses a zstd record batch with cramjam's one-shot functions,
which set up a new zstd context at each call: about 20 us per batch whatever its size (measured
here: 19-22 us for 141 bytes to 2.8 KB, level 1 or 3; decompression about 17 us). stockflow
compresses the records only it reads (``STOCKFLOW_INTERNAL_COMPRESSION``, zstd by default), and
at part load a worker makes many small record batches: ``zstd_encode`` was 7.6% of a worker's
busy samples and ``zstd_decode`` 2.0% at 1,500 multi-line orders/s (py-spy), where a batch's
records cost less than its compression.

:func:`use_reused_contexts` points the names aiokafka's record modules call (its C record
builder and reader look them up in their module's globals at each call) at the ``zstandard``
library's compressor and decompressor, one of each per thread (a context is not thread-safe: the
event loop compresses, a consumer thread may decompress). The format and the level are
aiokafka's (level 3, Kafka's default, KIP-390), so every consumer reads the batches as before. A
payload that ``zstandard`` cannot decompress in one call (a frame without its content size in
the header, as a streaming compressor writes it, or several frames) goes to aiokafka's own
function.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LEVEL", "RECORD_MODULES", "ZstdCodec", "use_reused_contexts"]

LEVEL = 3
"""aiokafka's zstd level when the producer names none."""

RECORD_MODULES = ("aiokafka.record._crecords.default_records", "aiokafka.record.default_records")
"""The modules whose ``zstd_encode`` and ``zstd_decode`` aiokafka's record batches call: the
C extension and the pure-Python fallback."""

_MARK = "_stockflow_zstd"


class ZstdCodec:
    """``encode(payload, level=None)`` and ``decode(payload)`` with aiokafka's signatures, on
    contexts kept per thread; ``fallback_decode``: aiokafka's, for what zstandard cannot read
    in one call (a frame without its content size, several frames)."""

    def __init__(self, fallback_decode: Callable[[Any], bytes]) -> None:
        import zstandard

        self._zstandard = zstandard
        self._local = threading.local()
        self._fallback = fallback_decode

    def _contexts(self) -> tuple[Any, Any]:
        local = self._local
        try:
            return local.compressor, local.decompressor
        except AttributeError:
            local.compressor = self._zstandard.ZstdCompressor(level=LEVEL)
            local.decompressor = self._zstandard.ZstdDecompressor()
            return local.compressor, local.decompressor

    def encode(self, payload: Any, level: int | None = None) -> bytes:
        if level is not None and level != LEVEL:  # aiokafka passes none; a caller may
            return self._zstandard.ZstdCompressor(level=level).compress(payload)
        return self._contexts()[0].compress(payload)  # type: ignore[no-any-return]

    def decode(self, payload: Any) -> bytes:
        try:
            # Extra data refused: by default zstandard reads the first frame and drops the rest,
            # where aiokafka's function decodes every frame of the payload.
            return self._contexts()[1].decompress(payload, allow_extra_data=False)  # type: ignore[no-any-return]
        except self._zstandard.ZstdError:  # no content size in its header, or several frames
            return self._fallback(payload)


def use_reused_contexts() -> bool:
    """Make aiokafka's record batches use :class:`ZstdCodec` (once per process). ``False``,
    changing nothing, when ``zstandard`` is not installed or aiokafka's record modules do not
    call the two names (checked at startup: :mod:`stockflow._faust.internals`)."""
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    modules = []
    for name in RECORD_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:  # aiokafka built without its C extension: the pure module alone
            continue
    if any(getattr(module, _MARK, False) for module in modules):
        return True
    if not modules or not all(
        hasattr(m, "zstd_encode") and hasattr(m, "zstd_decode") for m in modules
    ):
        return False
    codec = ZstdCodec(modules[0].zstd_decode)
    for module in modules:
        module.zstd_encode = codec.encode  # type: ignore[attr-defined]
        module.zstd_decode = codec.decode  # type: ignore[attr-defined]
        setattr(module, _MARK, True)
    return True
