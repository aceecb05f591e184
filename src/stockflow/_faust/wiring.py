"""Puts stockflow's transport on a Faust app: :class:`~stockflow._faust.transport.TunedTransport`
with stockflow's consumer (:class:`~stockflow._faust.consumer.BatchConsumer`) and its consumer
thread, on its own thread or the main loop (:mod:`stockflow._faust.inline`).

Its own module because it joins the three: the transport module is what the consumer and the
inline thread build on, so it cannot import them back."""

from __future__ import annotations

import logging
from typing import Any

from stockflow._faust.consumer import BatchConsumer
from stockflow._faust.inline import InlineConsumerThread
from stockflow._faust.transport import TunedConsumerThread, TunedTransport

__all__ = ["use_tuned_transport"]

log = logging.getLogger(__name__)


def use_tuned_transport(
    app: Any, fetch_max_wait_ms: int, *, inline: bool = False, fetch_lanes: bool = False
) -> None:
    """Make ``app`` use :class:`TunedTransport`. Call before the app starts. ``inline``: run
    the consumer on the main loop instead of a thread of its own.

    Only applied to ``kafka://``/``aiokafka://`` brokers: other drivers are left alone.
    """
    scheme = str(app.conf.broker_consumer[0].scheme)
    if scheme not in ("kafka", "aiokafka"):
        log.warning("broker scheme %r: stockflow's transport fixes are not applied", scheme)
        return
    thread_class = InlineConsumerThread if inline else TunedConsumerThread
    consumer_class = type(
        "StockflowConsumer",
        (BatchConsumer,),
        {
            "fetch_max_wait_ms": fetch_max_wait_ms,
            "thread_class": thread_class,
            "fetch_lanes": fetch_lanes,
        },
    )
    transport_class = type("StockflowTransport", (TunedTransport,), {"Consumer": consumer_class})
    app.transport = transport_class(app.conf.broker_consumer, app)
