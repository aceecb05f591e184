"""Fakes of aiokafka's records and Faust's consumer thread for the consumer tests of the unit
tier (imported as a plain module, like ``fixtures``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

__all__ = ["FakeRecord", "FakeThread"]


@dataclass
class FakeRecord:
    offset: int


@dataclass
class FakeThread:
    """The consumer thread: ``fetch_again`` answers as if every position lay past the offset."""

    calls: list[dict[TP, int]] = field(default_factory=list)

    async def fetch_again(self, first_offsets: dict[TP, int]) -> dict[TP, int]:
        self.calls.append(dict(first_offsets))
        return dict(first_offsets)

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        return await fun(*args)
