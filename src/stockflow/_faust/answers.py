"""Line answers applied by the order desk in the process that wrote them.

A multi-line order's outcome takes three trips through the broker: the desk's line commands,
the product writers' answers, the desk's outcome. When the answer's reply partition is
active in the same worker as the product writer that decided it, :class:`BatchProcessor`
hands the answer record to the desk right after publishing it, instead of waiting for it to
come back through the broker (docs/benchmarks.md, "What bounds a multi-line order's p50").

Why it keeps every guarantee:

- The answer record is still published, in the same way: it is the durable copy. The desk's
  writes it decides are sent after every changelog write queued before them, as outputs are
  (``ChangelogWriter.send(after_state=True)``): a saga line is never written answered on the
  broker while the ledger write that decided the answer can still be lost.
- When the record comes back, the desk skips it (:meth:`LocalAnswers.take`): it was applied
  already, to the same state. Any record not skipped is applied as before; applying an answer
  twice is a no-op (the redelivery case every answer already handles).
- What was applied here is forgotten at every rebalance (:meth:`LocalAnswers.clear`): the
  record is then applied again by whoever owns the partition, which is a duplicate, and a
  worker that gets the partition back after losing it never skips a record on old memory.
- The answers are applied only while the reply partition is active here and no rebalance
  began during the batch (the processor's ``local``); otherwise the broker's copy is the only
  one, as before.
"""

from __future__ import annotations

from typing import Final

from stockflow.processing.records import Step

__all__ = ["MAX_REMEMBERED", "LocalAnswers"]

MAX_REMEMBERED: Final = 65_536
"""Answer records remembered until they come back, at most. Past that, all are forgotten:
their records are then applied again (duplicates, no-ops), which costs only their work."""


class LocalAnswers:
    """The answer records applied in this process, by reply partition and exact bytes, each
    with the :class:`Step` it made (reported to the probe when the record comes back)."""

    __slots__ = ("_steps", "applied", "skipped")

    def __init__(self) -> None:
        self._steps: dict[tuple[int, bytes], list[Step]] = {}
        self.applied = 0
        """Answer records applied here, in all."""
        self.skipped = 0
        """Answer records skipped when they came back, in all."""

    def __len__(self) -> int:
        return len(self._steps)

    def note(self, partition: int, value: bytes, step: Step) -> None:
        """``value``, published to ``partition`` of the reply topic, was applied (``step``)."""
        if len(self._steps) >= MAX_REMEMBERED:
            self._steps.clear()
        self._steps.setdefault((partition, value), []).append(step)
        self.applied += 1

    def take(self, partition: int, value: bytes | None) -> Step | None:
        """The step of an answer record applied here that has the same bytes, forgotten now;
        ``None``: not applied here, so it must be applied."""
        if value is None:
            return None
        steps = self._steps.get((partition, value))
        if steps is None:
            return None
        step = steps.pop(0)
        if not steps:
            del self._steps[(partition, value)]
        self.skipped += 1
        return step

    def clear(self) -> None:
        """Forget every answer applied here (a rebalance began)."""
        self._steps.clear()
