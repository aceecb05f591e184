"""Where a worker's time goes under load: py-spy (``pip install py-spy``; not a dependency).

:class:`Profiler` samples a running process with ``py-spy record --format raw`` (collapsed
stacks, idle samples included, one root per thread) while a benchmark runs; :func:`summarize`
turns the stacks into shares of samples: per thread, per layer (the file a leaf frame is in) and
the functions with the most self and inclusive time.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["KEY_FUNCTIONS", "LAYERS", "Profile", "Profiler", "summarize"]

LAYERS: tuple[tuple[str, str], ...] = (
    ("select/epoll wait (idle)", "selectors.py"),
    ("stockflow.core", "stockflow/core/"),
    ("stockflow.processing", "stockflow/processing/"),
    ("stockflow.processing", "stockflow/keys.py"),  # key building, moved out of processing/
    ("stockflow agents/tables/transport", "stockflow/"),
    ("pydantic", "pydantic"),
    ("json", "json/"),
    ("faust tables/changelog", "faust/tables/"),
    ("faust stores (rocksdb)", "faust/stores/"),
    ("faust streams/agents", "faust/streams"),
    ("faust agents", "faust/agents/"),
    ("faust topics/producer", "faust/topics"),
    ("faust transport (consumer/conductor)", "faust/transport/"),
    ("faust other", "faust/"),
    ("mode (services, threads)", "mode/"),
    ("aiokafka producer", "aiokafka/producer"),
    ("aiokafka consumer", "aiokafka/consumer"),
    ("aiokafka protocol/records", "aiokafka/"),
    ("kafka protocol codec", "kafka/"),
    ("asyncio event loop", "asyncio/"),
    ("rocksdict", "rocksdict"),
)


KEY_FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("batch processor, records applied", "BatchProcessor._apply"),
    ("  ProductWriter.handle", "ProductWriter.handle"),
    ("  OrderDesk.handle_order", "OrderDesk.handle_order"),
    ("  OrderDesk.handle_reply", "OrderDesk.handle_reply"),
    ("  table writes (TableStore.put)", "TableStore.put"),
    ("record batches built (BatchSender.send)", "BatchSender.send"),
    ("standby partitions applied (StandbyApplier.take)", "StandbyApplier.take"),
    ("Faust producer buffer task (changelog sends)", "ProducerBuffer._handle_pending"),
    ("Topic.publish_message (every send)", "Topic.publish_message"),
    ("aiokafka producer Sender task", "Sender._sender_routine"),
    ("aiokafka Fetcher (consumer thread)", "Fetcher._fetch_requests_routine"),
    ("Faust conductor on_message", "_compile_message_handler.<locals>.on_message"),
    ("Faust stream iteration (Stream._c_aiter)", "Stream._c_aiter"),
    ("RocksDB store (faust/stores/rocksdb.py)", "stores/rocksdb.py"),
    ("pydantic (parse and dump)", "pydantic"),
    ("socket writes (_SelectorSocketTransport.write)", "_SelectorSocketTransport.write"),
    ("offset commits (Consumer.commit)", "Consumer.commit"),
)
"""(label, frame marker): the share of busy samples with such a frame anywhere on the stack."""


@dataclass
class Profile:
    """Sample counts. ``busy`` excludes samples idle in ``select`` (the shares of CPU time);
    ``threads`` maps each thread to (samples, busy samples)."""

    samples: int = 0
    busy: int = 0
    threads: dict[str, list[int]] = field(default_factory=dict)
    layers: Counter[str] = field(default_factory=Counter)
    self_time: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    key: Counter[str] = field(default_factory=Counter)

    def as_dict(self, top: int = 15) -> dict[str, object]:
        def shares(counter: Counter[str]) -> list[tuple[str, float]]:
            busy = max(self.busy, 1)
            return [(name, round(n / busy, 4)) for name, n in counter.most_common(top)]

        return {
            "samples": self.samples,
            "busy_share": round(self.busy / max(self.samples, 1), 4),
            "threads": {
                name: {"samples": n, "busy_share": round(b / max(n, 1), 4)}
                for name, (n, b) in self.threads.items()
            },
            "layers_of_busy": shares(self.layers),
            "self_of_busy": shares(self.self_time),
            "inclusive_of_busy": shares(self.inclusive),
            "key_of_busy": [
                (label, round(self.key[label] / max(self.busy, 1), 4))
                for label, _marker in KEY_FUNCTIONS
            ],
        }


IDLE = "select/epoll wait (idle)"


IDLE_WAITS = frozenset({"wait", "_wait_for_tstate_lock"})
"""Leaves of a thread blocked on a lock or condition (the exit watchdog, the consumer thread's
queue): idle like ``select``, not CPU, though py-spy's ``--idle`` samples show them."""


def _idle_wait(frame: str) -> bool:
    # py-spy names the function "wait" or, in newer versions, "Condition.wait".
    name, _, where = frame.partition(" (")
    return where.startswith("threading.py") and name.rpartition(".")[2] in IDLE_WAITS


def _layer(frame: str) -> str:
    if _idle_wait(frame):
        return IDLE
    for name, marker in LAYERS:
        if marker in frame:
            return name
    return "other"


def _function(frame: str) -> str:
    # "name (path/to/module.py:123)" -> "name (package/module.py)"
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


def summarize(raw: str) -> Profile:
    """Parse py-spy's raw (collapsed) output: ``[thread;]frame;...;leaf count`` per line."""
    profile = Profile()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "main"
        if frames[0].startswith(("thread (", "process (")):
            thread = frames[0].split(": ", 1)[-1].strip()
            frames = frames[1:]
        if not frames:
            continue
        counts = profile.threads.setdefault(thread, [0, 0])
        profile.samples += count
        counts[0] += count
        layer = _layer(frames[-1])
        if layer == IDLE:
            continue
        profile.busy += count
        counts[1] += count
        profile.layers[layer] += count
        profile.self_time[_function(frames[-1])] += count
        for name in {_function(f) for f in frames}:
            profile.inclusive[name] += count
        for label, marker in KEY_FUNCTIONS:
            if any(marker in frame for frame in frames):
                profile.key[label] += count
    return profile


class Profiler:
    """``py-spy record`` attached to ``pid`` until :meth:`stop`."""

    def __init__(self, pid: int, *, rate: int = 100) -> None:
        binary = shutil.which("py-spy")
        if binary is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.output = Path(tempfile.mkdtemp(prefix="bench-pyspy-")) / "stacks.txt"
        self.process = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--idle",
                "--threads",
                "--nonblocking",
                "--output",
                str(self.output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(0.5)  # attached before the load starts
        self.profile: Profile | None = None

    def stop(self, timeout: float = 30.0) -> Profile:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        text = self.output.read_text() if self.output.exists() else ""
        self.profile = summarize(text)
        return self.profile
