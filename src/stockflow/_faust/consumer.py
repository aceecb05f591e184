"""Faust's consumer with stockflow's topics taken out of its per-record path.

:class:`BatchConsumer` fetches as Faust does (one ``getmany`` in the consumer thread, only the
active partitions), then hands the records of stockflow's topics to the
:class:`~stockflow._faust.batches.BatchProcessor` as whole batches, and lets every other
record (an embedding app's own agents) go Faust's way. Faust keeps the group membership, the
assignment, the tables and their recovery, the rebalances and the commits; only the offsets
to commit for stockflow's partitions come from here:

- a batch's offsets count as processed once its changelog records and outputs are in the
  producer client; Faust computes the offsets of a commit *before* it flushes the producer,
  so a commit never covers an effect that is not on the broker;
- the batch runs in a task of its own, shielded: a fetcher stopped or cancelled mid-batch
  (a rebalance, a shutdown) never leaves local state written and its changelog unsent;
- a revocation or a shutdown waits for the batch in flight (``wait_empty``), and for its
  table writes to reach the local stores (they wait for their changelog records'
  acknowledgement), before Faust commits and closes the tables;
- the fetcher's next request leaves before a batch is applied (:data:`FETCHER_TURNS`), not
  after it: a broker round trip less per hop at part load;
- records fetched while the flow was stopped are not processed: they are fetched again, and
  the partitions sought back to their committed offsets, as Faust does;
- a fetch of a stockflow partition that skips offsets (starts past the next offset to deliver,
  or has a hole inside) is processed up to the hole and fetched again from there; a hole found
  again is the log's own, and accepted;
- a batch that ends after a rebalance started (the generation changed, or a revocation
  began: a worker dropped from the group keeps its generation until it joins again) does not
  move the offsets: its records are fetched again from the committed offset (processing is
  idempotent; skipping is not);
- a product command this worker published to a partition active here is applied as soon as
  the broker acknowledges it, when it is the partition's next record, through the same path
  as a fetched batch and one batch at a time with them; its fetched copy is then dropped as
  delivered (:mod:`~stockflow._faust.commands_here`);
- records are processed only while the group coordinator has confirmed this worker's
  membership recently (:class:`~stockflow._faust.membership.MembershipLease`): a worker
  frozen or cut off past its session timeout may have lost its partitions to another one,
  and fetches its records again instead of deciding on its older tables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from faust.types import TP

from stockflow._faust.applied_here import AppliedHere
from stockflow._faust.batches import BatchProcessor, Changelog
from stockflow._faust.internals import CONSUMER_STATE, check_internals
from stockflow._faust.membership import MembershipLease
from stockflow._faust.standby import StandbyApplier
from stockflow._faust.transport import TunedConsumer
from stockflow.errors import StockflowError
from stockflow.garbage import collect_between_batches
from stockflow.holes import up_to_hole

__all__ = ["BatchConsumer"]

log = logging.getLogger(__name__)

FETCHER_TURNS = 3
"""Turns of the event loop given to aiokafka's fetcher before a batch is applied. Taking the
records resolved the future its routine waits on; by the batch task's first turn that has woken
the routine, which starts the request's task on the next turn, and that task writes the request
on the one after: two turns, and one to spare (each costs microseconds)."""


class BatchConsumer(TunedConsumer):
    """See the module docstring. ``processor`` is set by :func:`stockflow.install` through the
    transport (``transport.batch_processor``); without one this is Faust's consumer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_internals([f"Consumer().{n}" for n in CONSUMER_STATE if not hasattr(self, n)])
        self._processed: dict[TP, int] = {}
        """Per stockflow partition, the offset after the last record whose effects are in the
        producer client: what the next commit may cover."""
        self._in_flight: asyncio.Future[None] | None = None
        self._gap_fetched_from: dict[TP, int] = {}
        """Per stockflow partition with an offset gap, the offset it was fetched again from:
        a gap still there after that is the log's own (see :meth:`_refetch_gaps`)."""
        self._standbys = StandbyApplier(self.app)
        self.membership = MembershipLease(float(self.app.conf.broker_session_timeout) / 2)
        """Confirmed by the consumer thread's heartbeats (see ``TunedConsumerThread``)."""
        self._holding = False
        self._here = AppliedHere(self)
        """Product commands published here, applied once acknowledged (commands_here)."""
        self._revocations = 0
        """Revocations begun: a batch that ends after one began records no offsets, and a
        commit whose offsets were taken before one commits none of stockflow's."""
        self._offsets_taken_after = 0
        """:attr:`_revocations` when the offsets of the commit under way were taken."""

    @property
    def processor(self) -> BatchProcessor | None:
        return getattr(self.transport, "batch_processor", None)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        processor = self.processor
        if processor is None:
            async for item in super().getmany(timeout):
                yield item
            return
        # The last batch's records, steps and outputs are freed by now: the cheapest moment
        # to look for reference cycles (see stockflow.garbage).
        collect_between_batches()
        previous = self._in_flight
        if previous is not None and not previous.done():
            # A fetcher cancelled mid-batch leaves its batch running (shielded, applied in
            # slices): two batches at once could apply a partition's records out of order.
            await asyncio.wait({previous})
        records, active = await self._wait_next_records(timeout)
        if not records or self.should_stop:
            return
        if not self.flow_active:
            # Fetched while a rebalance stopped the flow: fetched again. Faust only seeks to
            # the committed offsets, and aiokafka seeks no partition that has none: records
            # fetched past it would be skipped.
            log.debug("records fetched while the flow was stopped; fetching them again")
            try:
                await self._fetch_again(
                    {tp: batch[0].offset for tp, batch in records.items() if batch},
                    "records fetched while the flow was stopped",
                )
                await self.perform_seek()
            except Exception as exc:
                log.warning("seek after a stopped flow failed: %r", exc)
            return
        buffered = self._buffered_partitions
        deliverable = {
            tp: batch
            for tp, batch in records.items()
            if batch and (active is None or tp in active or tp in buffered)
        }
        read_offset = self._read_offset
        applied, again = self._standbys.take(deliverable)
        for tp, end in applied.items():
            read_offset[tp] = end
        if again:
            await self._fetch_again(again, "standby records fetched before recovery completed")
        generation = self.app.consumer_generation_id
        self._here.fetch_taken()  # what is applied here from now on, its batch must skip
        mine: list[tuple[TP, Sequence[Any]]] = []
        theirs: dict[TP, Any] = {}
        gaps: dict[TP, tuple[int, int]] = {}
        topics = processor.topics
        for tp, batch in deliverable.items():
            if tp.topic not in topics:
                theirs[tp] = batch
                continue
            start = read_offset.get(tp)
            if start is None:  # the first fetch since the assignment: it starts the count
                start = batch[0].offset
            elif batch[0].offset < start:  # delivered already (a seek back, a refetch)
                batch = [record for record in batch if record.offset >= start]
                if not batch:
                    continue
            batch, hole = self._up_to_hole(tp, batch, start)
            if hole is not None:
                gaps[tp] = hole
            if batch:
                mine.append((tp, batch))
        if gaps:
            await self._refetch_gaps(gaps)
        if mine and not self.membership.holds():
            await self._hold(mine)
            mine = []
        elif mine and self._holding:
            log.info("membership confirmed again: processing resumes")
            self._holding = False
        if mine:
            revocations = self._revocations
            task = self._chained(lambda: self._process(processor, mine, generation, revocations))
            await asyncio.shield(task)
        if theirs:
            async for item in self._faust_messages(theirs, generation):
                yield item

    async def _hold(self, batches: list[tuple[TP, Sequence[Any]]]) -> None:
        """Records fetched while the membership is not confirmed: fetched again later."""
        lease = self.membership
        if not self._holding:
            self._holding = True
            age = lease.age()
            log.warning(
                "group membership not confirmed %s (trusted for %.1fs): processing held "
                "until a heartbeat is answered or the partitions are reassigned",
                "in this generation" if age is None else f"for {age:.1f}s",
                lease.window,
            )
        await self._fetch_again(
            {tp: batch[0].offset for tp, batch in batches}, "membership not confirmed"
        )
        await asyncio.sleep(min(0.1, lease.window / 10))

    def _up_to_hole(
        self, tp: TP, batch: Sequence[Any], start: int
    ) -> tuple[Sequence[Any], tuple[int, int] | None]:
        """The records of ``batch`` (its first at ``start`` or later) that follow on from
        ``start`` without a hole, and the first hole not fetched again yet: its first offset and
        the offset fetched after it. A hole fetched again once already is the log's own: passed
        (see :meth:`_refetch_gaps`)."""
        gaps = self._gap_fetched_from

        def passed(missing: int, _after: Any) -> bool:
            if gaps.get(tp) != missing:
                return False
            del gaps[tp]
            return True

        count, missing = up_to_hole(tp, batch, start, passed)
        if missing is None:
            if gaps:
                gaps.pop(tp, None)  # filled
            return batch, None
        return batch[:count], (missing, batch[count].offset)

    async def _refetch_gaps(self, gaps: dict[TP, tuple[int, int]]) -> None:
        """Partitions whose fetched records skip offsets: at the start of the fetch (past the
        next offset to deliver) or inside it. On stockflow's topics (neither compacted nor
        written in transactions) the records in between may never have been processed, and
        their offsets would be committed: a lost order. The records before the hole are
        processed, and the partition is fetched again from the hole.

        The embedded broker does this (:mod:`stockflow.holes`: with several producers writing a
        partition, a fetch can return a record before an earlier one another producer is still
        writing; the internal topics are written by every worker). Before this guard the chaos
        suite lost an order so once: a product command at offset 83 never processed while 84,
        of the same producer batch, was. A harmless cause looks the same: Faust's seek to the
        committed offsets at the end of a recovery awaits each partition's committed offset in
        turn and only then sets the next offsets; a batch fetched and processed in between
        leaves its partition's next offset set back. Those records are then processed twice,
        which is idempotent.

        A hole that the fetch from its offset returns again is the log's own (records deleted
        by retention, transaction markers): accepted, and logged."""
        for tp, (start, after) in gaps.items():
            log.warning(
                "offsets %d..%d of %s were fetched past; fetching again from %d",
                start,
                after - 1,
                tp,
                start,
            )
            self._gap_fetched_from[tp] = start
        await self._fetch_again({tp: start for tp, (start, _after) in gaps.items()}, "offset gaps")

    def _chained(self, work: Callable[[], Awaitable[None]]) -> asyncio.Future[None]:
        """Run ``work()`` once the batch in flight is done, as the batch in flight: fetched
        batches and those applied here (:mod:`stockflow._faust.commands_here`) one at a time,
        in the order they were started."""
        previous = self._in_flight

        async def after() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            await work()

        task = asyncio.ensure_future(after())
        # Its failure stops the worker (batches.crash); the next batch only waits for it.
        task.add_done_callback(_retrieved)
        self._in_flight = task
        return task

    async def _process(
        self,
        processor: BatchProcessor,
        batches: list[tuple[TP, Sequence[Any]]],
        generation: int,
        revocations: int,
        *,
        fetched: bool = True,
    ) -> None:
        if fetched:
            # Let aiokafka's fetcher send its next request first. Taking these records woke
            # its routine, which needs two turns of the loop to put a fetch on the wire, and
            # applying a batch holds the loop for milliseconds: without these turns the next
            # records were asked for only after the batch, a broker round trip added to every
            # hop at part load.
            for _ in range(FETCHER_TURNS):
                await asyncio.sleep(0)
            # Records applied here since the fetch was taken (commands_here) are delivered.
            batches = self._here.undelivered(batches)
            if not batches:
                return

        def unchanged() -> bool:
            return (
                self.app.consumer_generation_id == generation and self._revocations == revocations
            )

        # A long fetch is applied in slices (BatchProcessor.process): one that a rebalance
        # interrupts stops at the next slice, and a revocation waits for less.
        await processor.process(
            batches,
            proceed=unchanged,
            local=self._active_replies(processor),
            here=self._here.published(processor, (generation, revocations)),
        )
        if not unchanged():
            # A revocation waits for this batch (wait_empty) after it has forgotten the
            # partitions' offsets: recorded now, they came back for the next commit. A worker
            # dropped from the group (cut off for longer than its session) keeps its generation
            # until it joins again, and its first commit in the new generation then covered
            # records whose outputs had never been sent (a soak at 2,000/s on 16 partitions
            # with a 12 s blackhole: a Reserve and three Confirms lost).
            log.info("a rebalance began during a batch: its records are fetched again")
            return
        processed = self._processed
        acked = self._acked
        monitor = self.app.monitor
        for tp, batch in batches:
            end = batch[-1].offset + 1
            processed[tp] = end
            self._read_offset[tp] = end
            if not fetched:
                self._here.applied(tp, end)
            acked.setdefault(tp, [])  # makes Faust's commit look at this partition
            monitor.track_tp_end_offset(tp, self.highwater(tp))

    def _active_replies(self, processor: BatchProcessor) -> Callable[[int], bool] | None:
        """Whether a partition of the reply topic is active here (assigned, not paused for
        a rebalance or a recovery), for the answers applied in process
        (:mod:`stockflow._faust.answers`)."""
        topic = processor.replies
        if topic is None:
            return None

        def active(partition: int) -> bool:
            partitions = self._active_partitions
            return partitions is not None and TP(topic, partition) in partitions

        return active

    async def _faust_messages(
        self, records: dict[TP, Any], generation: int
    ) -> AsyncIterator[tuple[TP, Any]]:
        """The rest of the fetch, the way Faust's ``getmany`` yields it."""
        to_message = self._to_message
        for tp, record in self.scheduler.iterate(records):
            if not self.flow_active or self.app.consumer_generation_id != generation:
                break
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            yield tp, to_message(tp, record)

    def _new_offset(self, tp: TP) -> int | None:
        processed = self._processed.get(tp)
        if processed is not None:
            return processed
        result: int | None = super()._new_offset(tp)
        return result

    def _filter_committable_offsets(self, tps: Any) -> dict[TP, int]:
        self._offsets_taken_after = self._revocations
        offsets: dict[TP, int] = super()._filter_committable_offsets(tps)
        return offsets

    async def _commit(self, offsets: Any) -> bool:
        """Faust's commit, after the producer's flush. Offsets taken before a revocation
        began may cover records whose outputs a dropped worker never sent (the flush ends when
        they fail); sent after the worker joined again, the coordinator would accept them."""
        processor = self.processor
        if processor is not None and self._revocations != self._offsets_taken_after:
            topics = processor.topics
            stale = [tp for tp in offsets if tp.topic in topics]
            if stale:
                log.info("%d offset(s) taken before a revocation: not committed", len(stale))
                offsets = {tp: offset for tp, offset in offsets.items() if tp.topic not in topics}
                if not offsets:
                    return False
        committed: bool = await super()._commit(offsets)
        return committed

    async def wait_empty(self) -> None:
        """Faust's, with the table writes of what was processed in the local stores (a
        revocation or a stop commits and closes the tables right after this): on the batch
        path after the batch in flight, before Faust's wait; on the stream path
        (``STOCKFLOW_CONSUMER=stream``) after Faust's wait, which lets the streams finish."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(self.app.conf.broker_session_timeout)
        task = self._in_flight
        if task is not None and not task.done():
            done, _pending = await asyncio.wait({task}, timeout=deadline - loop.time())
            if not done:
                log.warning("the batch in flight did not finish in time")
        changelog: Changelog | None = getattr(self.transport, "changelog", None)
        batch_path = self.processor is not None
        if changelog is not None and batch_path:
            await self._settle(changelog, deadline)
        await super().wait_empty()
        if changelog is not None and not batch_path:
            await self._settle(changelog, deadline)

    async def _settle(self, changelog: Changelog, deadline: float) -> None:
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
        if not await changelog.settled(remaining):
            # The partitions may go to another worker with writes still to come into their
            # local stores: stop instead, the restart restores from the changelogs.
            exc = StockflowError("changelog writes not acknowledged in time for a rebalance")
            log.critical("%s; stopping the worker", exc)
            await self.app.crash(exc)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self._revocations += 1
        processor = self.processor
        if processor is not None:
            processor.answers.clear()  # applied here: whoever owns them next applies them again
            processor.here.clear()  # left to the fetch, from the committed offsets
        for tp in revoked:
            self._processed.pop(tp, None)
            self._gap_fetched_from.pop(tp, None)
        await super().on_partitions_revoked(revoked)


def _retrieved(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()
