"""A restarted worker's previous group member: noted per directory, removed before joining."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stockflow._faust.rejoin import MEMBER_FILE, PreviousMember, leave_previous_member
from stockflow.testing.broker import free_port


def test_a_noted_member_is_read_back_for_its_group_only(tmp_path: Path) -> None:
    member = PreviousMember(tmp_path / "v1")
    assert member.read("shop") is None  # nothing noted, no directory yet
    member.note("shop", "faust-1")
    assert PreviousMember(tmp_path / "v1").read("shop") == "faust-1"
    assert PreviousMember(tmp_path / "v1").read("other-shop") is None
    member.note("shop", "faust-2")  # a join after the coordinator forgot the member
    assert PreviousMember(tmp_path / "v1").read("shop") == "faust-2"
    assert [p.name for p in (tmp_path / "v1").iterdir()] == [MEMBER_FILE]  # no temporary left


def test_the_same_member_is_written_once(tmp_path: Path) -> None:
    member = PreviousMember(tmp_path)
    member.note("shop", "faust-1")
    member.path.write_text("shop\nedited\n")
    member.note("shop", "faust-1")  # every rebalance assigns again: no write each time
    assert member.read("shop") == "edited"


def test_an_empty_or_damaged_file_names_no_member(tmp_path: Path) -> None:
    member = PreviousMember(tmp_path)
    for content in (b"", b"shop\n", b"shop\n\n", b"\xff\xfe\x00garbage"):
        member.path.write_bytes(content)
        assert member.read("shop") is None
    member.note("shop", "")  # aiokafka's "no member id yet": nothing noted
    assert member.read("shop") is None


def test_a_note_that_cannot_be_written_is_only_logged(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    PreviousMember(blocker / "v1").note("shop", "faust-1")  # its parent is a file


def test_an_unreachable_broker_costs_at_most_the_timeout() -> None:
    started = time.monotonic()
    code = asyncio.run(
        leave_previous_member([f"127.0.0.1:{free_port()}"], "shop", "faust-1", timeout=2.0)
    )
    assert code is None
    assert time.monotonic() - started < 4.0


def _leave_unreachable(caplog: pytest.LogCaptureFixture, **client_kwargs: object) -> str:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stockflow._faust.rejoin"):
        code = asyncio.run(
            leave_previous_member(
                [f"127.0.0.1:{free_port()}"],
                "shop",
                "faust-1",
                client_kwargs=client_kwargs,
                timeout=2.0,
            )
        )
    assert code is None
    return caplog.text


def test_a_failure_to_build_the_client_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    # Whatever the security settings hold, the worker's start goes on.
    assert "TypeError" in _leave_unreachable(caplog, no_such_setting=True)


def test_sasl_settings_reach_the_client(caplog: pytest.LogCaptureFixture) -> None:
    text = _leave_unreachable(
        caplog,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="u",
        sasl_plain_password="p",
    )
    # Built with them, then refused by the closed port: a connection error, not a TypeError.
    assert "could not remove" in text and "TypeError" not in text


def _noted_by(member: PreviousMember, host: str, pid: int) -> None:
    member.path.write_text(f"shop\nfaust-1\n{host} {pid}\n")


def test_a_member_noted_by_a_process_still_running_here_is_left_alone(tmp_path: Path) -> None:
    # A second worker started on a live worker's directory must not take the live one out.
    member = PreviousMember(tmp_path)
    _noted_by(member, socket.gethostname(), os.getppid())  # pytest's parent: alive
    assert member.read("shop") is None
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    _noted_by(member, socket.gethostname(), exited.pid)  # a run that is gone
    assert member.read("shop") == "faust-1"
    _noted_by(member, socket.gethostname(), os.getpid())  # a container restarted: same pid
    assert member.read("shop") == "faust-1"
    _noted_by(member, "another-host", os.getppid())  # cannot tell: the directory moved
    assert member.read("shop") == "faust-1"
