"""``stockflow demo`` as a real process with its output piped (not a terminal): the banner is
not cut mid-phrase and the summary says what each number counts, consistently."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_demo_summary_piped(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKFLOW_")}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from stockflow.cli import main; main()",
            "demo",
            "--orders",
            "300",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "flash sale: 300 orders for 157 units of 5 products, from 4 producers at once;" in lines
    assert "15 of the orders are sent twice (duplicates, as a retrying client);" in lines
    assert "6 malformed messages, for the dead-letter topic" in lines

    def row(label: str, unit: str) -> int:
        line = next(line for line in lines if re.match(rf"│\s+{re.escape(label)} ", line))
        found = re.search(rf"│\s+(\d+) │ {unit}\s", line)
        assert found, line
        return int(found[1])

    reserved = row("reserved", "orders")
    assert row("sent twice (duplicates)", "orders") == 15
    answered = row("answered again, identically", "orders")
    repeats = row("repeated outcome records", "records")
    assert answered == 15 and repeats >= answered
    assert row("malformed, dead-lettered", "messages") == 6
    if repeats > answered:
        assert any("answered again once per product" in line for line in lines)

    units = next(line for line in lines if line.startswith("units: "))
    found = re.match(r"units: (\d+) of 157 reserved by (\d+) orders .*, (\d+) left$", units)
    assert found, units
    assert int(found[2]) == reserved
    assert int(found[1]) + int(found[3]) == 157
    per_product = [
        re.findall(r"\d+", line) for line in lines if re.match(r"│\s+[a-z0-9-]+ │\s+\d+ │", line)
    ]
    assert sum(int(numbers[-1]) for numbers in per_product) == int(found[3])  # "left" column
    for line in lines:
        if " left, yet " in line:
            assert line.endswith("."), line
            assert "rejected insufficient_stock: " in line
    assert lines[-1].startswith("check passed")
