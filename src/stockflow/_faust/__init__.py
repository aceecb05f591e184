"""Private: everything of stockflow that reaches into Faust's or aiokafka's internals.

- :mod:`~stockflow._faust.transport`: Faust's aiokafka transport with the fetch wait, the
  end-offset fix, the refetch of paused partitions and a complete producer flush;
  :mod:`~stockflow._faust.wiring` puts it, with stockflow's consumer, on an app;
- :mod:`~stockflow._faust.consumer` and :mod:`~stockflow._faust.batches`: stockflow's topics
  consumed a whole fetch at a time, outside Faust's per-record path;
- :mod:`~stockflow._faust.producing` and :mod:`~stockflow._faust.changelog`: outputs and table
  changes handed to aiokafka one record batch per topic partition;
- :mod:`~stockflow._faust.recovery` and :mod:`~stockflow._faust.fast_restore`: changelog
  recovery that heals instead of crashing, and restores in RocksDB write batches;
- :mod:`~stockflow._faust.rejoin`: a worker restarted after a kill removes the group member
  its killed run left, instead of waiting out that member's session;
- :mod:`~stockflow._faust.internals`: every private name used above, checked at startup.

Nothing outside stockflow may import from here (``stockflow.tables`` re-exports what an
embedding app needs); the names and the behaviour follow the pinned versions of
faust-streaming and aiokafka (see ``pyproject.toml``).
"""

__all__: list[str] = []
