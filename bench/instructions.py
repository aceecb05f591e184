"""``python -m bench.instructions``: CPU instructions per single-line order through
:class:`~stockflow.processing.pipeline.LocalPipeline`, counted by valgrind's callgrind.

Wall-clock rates on this shared machine move 2x over a day and a few percent between two runs
of the same code, so a change worth 1-2% of an order cannot be told from noise by timing it.
An instruction count is the same for the same code and inputs whatever else the machine does
(seen here: within 0.4% between two runs, and equal with ``PYTHONHASHSEED`` fixed). The count
is taken twice, for ``--small`` and ``--large`` orders, and their difference divided by the
orders between them: imports and the stock set up beforehand cancel out.

Examples::

    python -m bench.instructions                        # the stockflow this Python imports
    python -m bench.instructions --src /tmp/old/src     # another checkout's, for an A/B

Fewer instructions is not always less time (a cache miss costs more than an add), so a change
is still timed with ``python -m bench --only core``; this says whether it removed work.
Needs ``valgrind`` on the PATH (Debian's package); about 40 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["count_instructions", "main"]

PRODUCTS = 2_000
ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = """
import sys
from bench.core import single_line_orders, stocked_pipeline, worker_collector

count, products = int(sys.argv[1]), int(sys.argv[2])
orders = single_line_orders(count, products)
pipe = stocked_pipeline(products, 10 * count)
with worker_collector():
    for key, value in orders:
        pipe.feed("orders", key, value, 2_000)
"""
"""The ``pipeline`` layer of ``python -m bench --only core`` (:mod:`bench.core`), untimed."""

_COLLECTED = re.compile(r"Collected : (\d+)")


def _collected(orders: int, src: Path | None) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")  # dict and set layouts the same in every run
    if src is not None:
        env["PYTHONPATH"] = str(src)
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            _SCRIPT,
            str(orders),
            str(PRODUCTS),
        ],
        env=env,
        cwd=ROOT,  # where ``bench`` imports from
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def count_instructions(small: int, large: int, src: Path | None = None) -> float:
    """Instructions per order between ``small`` and ``large`` orders (``src``: a ``src``
    directory to import stockflow from instead of the installed one)."""
    if large <= small:
        raise ValueError("--large must be above --small")
    return (_collected(large, src) - _collected(small, src)) / (large - small)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, help="a checkout's src directory to measure")
    parser.add_argument("--small", type=int, default=2_000, help="orders in the first count")
    parser.add_argument("--large", type=int, default=6_000, help="orders in the second count")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        parser.exit(2, "bench.instructions needs valgrind on the PATH (apt install valgrind)\n")
    per_order = count_instructions(args.small, args.large, args.src)
    where = args.src or "the installed stockflow"
    print(f"{per_order:,.0f} instructions per single-line order ({where})")


if __name__ == "__main__":
    main()
