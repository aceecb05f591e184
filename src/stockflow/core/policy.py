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
    expiry_bucket_ms: int = 100
    """Single-line orders forwarded to their writer whose reservations expire within this
    much share one expiry timer (one table write per batch instead of one per order); their
    expiry is then checked up to this much later."""
    expiry_bucket_bytes: int = 4096
    """A shared expiry timer holds about this many bytes of order ids at most; more orders
    expiring in the same ``expiry_bucket_ms`` start another one. Adding an order copies the
    timer's value: without a bound a burst (a replay, one hot partition) made that quadratic."""
    forward_single_line: bool = True
    """A new single-line order's payment, cancellation and expiry are decided by its product
    writer, the saga forwarding them (:mod:`stockflow.core.single_line`); ``False``: by the
    saga on the writer's answer, as before (while workers of an older version, whose writers
    do not know the forwarded commands, still run)."""

    @classmethod
    def from_seconds(
        cls,
        *,
        reservation_ttl: float,
        saga_timeout: float,
        retention: float,
        max_lines: int,
        forward_single_line: bool = True,
    ) -> Policy:
        return cls(
            reservation_ttl_ms=round(reservation_ttl * 1000),
            saga_timeout_ms=round(saga_timeout * 1000),
            retention_ms=round(retention * 1000),
            max_lines=max_lines,
            forward_single_line=forward_single_line,
        )
