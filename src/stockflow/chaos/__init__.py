"""Chaos scenarios on the real broker with real worker processes (issue 5): SIGKILLs at random
moments, takeover and rebalance in a group, redelivered and shuffled input, garbage, and a
broker made unreachable through a TCP proxy. Each scenario ends with ``stockflow audit
--strict`` and the run's own checks, and reports what it measured.

From Python::

    from pathlib import Path
    from stockflow.chaos import run_chaos

    results = run_chaos(["kill"], duration=120, workdir=Path("/tmp/chaos"))
    assert all(result.ok for result in results)

From the shell: ``stockflow chaos --scenario all --duration 600 --report docs/reliability.md``.
Importing this package starts nothing.
"""

from stockflow.chaos.proxy import TcpProxy, tcp_connections
from stockflow.chaos.scenarios import SCENARIOS, Budget, plan, run_chaos, run_scenario
from stockflow.chaos.verdict import ScenarioResult
from stockflow.chaos.watch import FlowWatcher, Recovery

__all__ = [
    "SCENARIOS",
    "Budget",
    "FlowWatcher",
    "Recovery",
    "ScenarioResult",
    "TcpProxy",
    "plan",
    "run_chaos",
    "run_scenario",
    "tcp_connections",
]
