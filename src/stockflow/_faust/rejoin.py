"""A restarted worker takes its dead predecessor out of the consumer group before it joins.

A worker killed without leaving its group (SIGKILL, the OOM killer, a lost node) stays a member
until the coordinator has not heard from it for the session timeout. Restarted before then, the
worker joins a group that still counts the dead member: the coordinator answers the join, waits
for a rejoin that never comes, and only a second join after the session expired gets the
partitions. Measured on the embedded broker at the default 6 s session timeout (four
partitions, one worker): 13.3 s from the SIGKILL to a ready worker, against 5.1 s when the dead
member had been removed first.

So each worker notes its member id in its application directory whenever it is assigned
partitions (:class:`PreviousMember`), and a worker starting on that directory asks the group
coordinator to remove that member (a LeaveGroup request on its behalf, as the member itself
sends on a graceful stop) before its consumer starts (:func:`leave_previous_member`). The note
stays after a graceful stop too: that stop's own LeaveGroup can fail (seen in a soak: a SIGTERM
during the join, "GroupCoordinatorNotAvailable", status 0 all the same, and the next start
waited 15.7 s), and removing a member that did leave costs one request. The member is this
directory's earlier run, unless the process that noted it still runs on this host: a second
worker started on a live worker's directory (which then fails on the RocksDB locks) leaves the
live one in its group. A member that has left or expired already is unknown to the coordinator,
which says so; a broker that does not answer in time, or any other failure, is logged and the
worker joins as it always did. With several workers the removal starts the rebalance that the
session expiry would have started later.

Not covered: a run killed while its own join was still pending (the coordinator may count it,
but the run never learned its member id), which the restart after it waits out as before (one
of 20 restarts in a soak at the default timeouts: 13.4 s). Deliberately so: the id of a new
member is in the first answer to its join (KIP-394), and noting it from there was tried, but on
the embedded broker (tansu ``510f3e2``) removing a member whose join is pending is answered
without error and leaves the group stuck: the next worker rejoined at the same generation every
5 s and never got its partitions (CI's chaos ``kill``, 2,824 orders undecided). Only members
that completed a join (noted on assignment) are removed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaClient
from aiokafka.client import CoordinationType
from aiokafka.errors import UnknownMemberIdError
from aiokafka.protocol.group import LeaveGroupRequest

__all__ = ["MEMBER_FILE", "PreviousMember", "leave_previous_member"]

log = logging.getLogger(__name__)

MEMBER_FILE = "stockflow-group-member"
"""The file in the application directory holding ``<group id>\n<member id>\n<host> <pid>``."""


def _running_here(host: str, pid: int) -> bool:
    """Whether ``pid`` on ``host`` is another process that is still running on this host."""
    if host != socket.gethostname() or pid == os.getpid() or pid <= 0:
        return False  # another host: cannot tell; our own pid: a container restarted
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by another user
        return True
    return True


class PreviousMember:
    """The group member id of the last run on one application directory."""

    def __init__(self, appdir: Path | str) -> None:
        self.path = Path(appdir) / MEMBER_FILE
        self._noted: tuple[str, str] | None = None

    def read(self, group_id: str) -> str | None:
        """The member id noted for ``group_id``, or ``None``: none noted, another group, an
        unreadable file, or noted by a process that still runs on this host (a second worker
        started on a live worker's directory must not take the live one out of its group)."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        if len(lines) < 2 or lines[0] != group_id or not lines[1].strip():
            return None
        member = lines[1].strip()
        host, _, pid = (lines[2] if len(lines) > 2 else "").rpartition(" ")
        if pid.isdigit() and _running_here(host, int(pid)):
            log.warning(
                "group member %s of %s was noted by process %s, which is still running: "
                "is another worker using this data directory?",
                member,
                self.path.parent,
                pid,
            )
            return None
        return member

    def note(self, group_id: str, member_id: str) -> None:
        """Write ``member_id`` unless it is the one noted last (a rebalance keeps it)."""
        if not member_id or self._noted == (group_id, member_id):
            return
        text = f"{group_id}\n{member_id}\n{socket.gethostname()} {os.getpid()}\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(self.path)  # never a half-written id
        except OSError as exc:
            log.warning("could not note the group member id in %s: %s", self.path, exc)
            return
        self._noted = (group_id, member_id)


async def leave_previous_member(
    bootstrap_servers: list[str],
    group_id: str,
    member_id: str,
    *,
    client_kwargs: dict[str, Any] | None = None,
    timeout: float = 5.0,
) -> int | None:
    """Ask ``group_id``'s coordinator to remove ``member_id``. Returns the response's error code
    (0: removed; 25: not a member any more), ``None`` when there was no answer in ``timeout``
    seconds or the request failed (logged; the caller joins anyway)."""
    client: AIOKafkaClient | None = None
    try:
        client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, **(client_kwargs or {}))
        response = await asyncio.wait_for(_leave(client, group_id, member_id), timeout)
    except Exception as exc:  # a start-up optimisation: any failure only costs the wait
        log.warning(
            "could not remove this worker's previous group member %s: %r; joining anyway "
            "(the coordinator drops it after its session timeout)",
            member_id,
            exc,
        )
        return None
    finally:
        if client is not None:
            await client.close()
    code = int(response.error_code)
    if code == 0:
        log.info(
            "removed this worker's previous group member %s (a run that did not leave)", member_id
        )
    elif code == UnknownMemberIdError.errno:
        log.debug("the previous group member %s had left already", member_id)
    else:
        log.warning("removing the previous group member %s: error code %d", member_id, code)
    return code


async def _leave(client: AIOKafkaClient, group_id: str, member_id: str) -> Any:
    await client.bootstrap()
    node = await client.coordinator_lookup(CoordinationType.GROUP, group_id)
    return await client.send(node, LeaveGroupRequest(group_id, member_id))
