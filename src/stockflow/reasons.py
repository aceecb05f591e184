"""The reason codes of stockflow's events: why an order was rejected, a line refused, a
reservation released.

The public events (:mod:`stockflow.models`) report them and the internal commands
(:mod:`stockflow.commands`) carry them; they have their own module so that both import them
without a cycle. :mod:`stockflow.models` re-exports them.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["RefusalReason", "RejectionReason", "ReleaseReason"]

RejectionReason = Literal["insufficient_stock", "unknown_product", "invalid_order", "timeout"]
RefusalReason = Literal[
    "insufficient_stock", "unknown_product", "timeout", "compensated", "invalid_order"
]
ReleaseReason = Literal["cancelled", "expired", "compensation"]
