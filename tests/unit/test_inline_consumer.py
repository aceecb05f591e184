"""InlineConsumerThread: Faust's consumer thread service run on the main loop, without a broker
(the aiokafka consumer's start and stop are replaced; the rest is mode's and Faust's code)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import faust
import pytest

from stockflow._faust.inline import InlineConsumerThread


class Probe(InlineConsumerThread):
    """Records where its start and stop ran instead of opening an aiokafka consumer."""

    fail_start: bool = False

    async def on_start(self) -> None:
        self.started_in = (threading.get_ident(), asyncio.get_running_loop())
        if self.fail_start:
            raise RuntimeError("the broker said no")

    async def on_thread_stop(self) -> None:
        self.stopped_in = threading.get_ident()


def inline(fail_start: bool = False) -> Probe:
    app = faust.App("inline-test")  # its settings only: nothing is started
    consumer: Any = SimpleNamespace(
        app=app, transport=SimpleNamespace(app=app), RebalanceListener=lambda thread: None
    )
    thread = Probe(consumer, loop=asyncio.get_running_loop())
    thread.fail_start = fail_start
    return thread


async def test_it_runs_on_the_main_loop_and_stops_without_touching_other_tasks() -> None:
    threads = threading.active_count()
    bystander = asyncio.ensure_future(asyncio.sleep(30))  # another service's task
    thread = inline()
    await thread.start()
    assert threading.active_count() == threads  # no thread was started
    assert thread.started_in == (threading.get_ident(), asyncio.get_running_loop())

    async def fetch(value: int) -> int:
        return value + 1

    assert await thread.call_thread(fetch, 41) == 42  # a direct call, no method queue
    await asyncio.wait_for(thread.stop(), timeout=10)
    assert thread.stopped_in == threading.get_ident()
    assert thread._serving is not None and thread._serving.done()
    assert not bystander.done()  # mode would cancel every task of "the thread's" loop
    bystander.cancel()


async def test_a_failed_start_raises_from_start() -> None:
    thread = inline(fail_start=True)
    with pytest.raises(RuntimeError, match="the broker said no"):
        await asyncio.wait_for(thread.start(), timeout=10)
