"""The checkout-facing client: place an order and get its answer in one call.

:class:`Client` (asyncio, aiokafka) and :class:`BlockingClient` (its synchronous wrapper on a
thread of its own). Both are exported from :mod:`stockflow` as ``stockflow.Client`` and
``stockflow.BlockingClient``. Errors: :class:`~stockflow.errors.OrderTimeout`,
:class:`~stockflow.errors.OrderConflict` (both :class:`~stockflow.errors.StockflowError`).
"""

from stockflow.client.blocking import BlockingClient
from stockflow.client.client import Client, LineInput

__all__ = ["BlockingClient", "Client", "LineInput"]
