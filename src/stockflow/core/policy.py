"""Business settings the decisions depend on, in the core's units (milliseconds)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Policy"]


@dataclass(frozen=True, slots=True)
class Policy:
    """Timeouts and limits, built from :class:`stockflow.Settings` (seconds) with
    :meth:`from_seconds`."""

    reservation_ttl_ms: int = 900_000
    saga_timeout_ms: int = 30_000
    retention_ms: int = 7 * 24 * 3600 * 1000
    max_lines: int = 100

    @classmethod
    def from_seconds(
        cls, *, reservation_ttl: float, saga_timeout: float, retention: float, max_lines: int
    ) -> Policy:
        return cls(
            reservation_ttl_ms=round(reservation_ttl * 1000),
            saga_timeout_ms=round(saga_timeout * 1000),
            retention_ms=round(retention * 1000),
            max_lines=max_lines,
        )
