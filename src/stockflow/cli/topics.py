"""``stockflow topics check|create``: the topics a worker needs, for operators who provision by
hand (the worker itself creates the missing ones at start, see :mod:`stockflow.lifecycle`).

Settings come from the ``STOCKFLOW_*`` environment (``STOCKFLOW_BROKER``, ``STOCKFLOW_APP_ID``,
``STOCKFLOW_PARTITIONS``, ``STOCKFLOW_REPLICATION_FACTOR``, ``STOCKFLOW_TOPIC_RETENTION``, the
topic names); ``--broker`` overrides the broker, ``--faust-id`` names the Faust app an embedded
stockflow runs in (its id starts the changelog names).

Example::

    STOCKFLOW_BROKER=kafka://kafka-1:9092 stockflow topics check --json

Exit status: 0 when every topic is as wanted, 1 when one is missing or differs (``check``) or
still disagrees after ``create``, 2 when the broker cannot be reached or refuses.
"""

from __future__ import annotations

import asyncio
import json
import sys

import click

from stockflow.errors import BrokerError, ConfigurationError
from stockflow.settings import Settings
from stockflow.topics import TopicCheck, copartition_problems, describe_problems, required_topics

__all__ = ["topics"]


def _settings(broker: str | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"broker": broker}) if broker else settings


def _run(settings: Settings, faust_id: str | None, *, create: bool) -> list[TopicCheck]:
    from stockflow.provisioning import inspect_topics, servers_and_auth

    servers, auth = servers_and_auth(settings)
    try:
        return asyncio.run(
            inspect_topics(
                servers,
                required_topics(settings, faust_id),
                create=create,
                timeout=settings.provision_timeout,
                client_kwargs=auth,
            )
        )
    except (BrokerError, ConfigurationError) as exc:
        click.echo(f"stockflow topics: {exc}", err=True)
        sys.exit(2)


def _report(checks: list[TopicCheck], settings: Settings, as_json: bool) -> None:
    if as_json:
        body = {
            "broker": settings.broker,
            "ok": all(c.ok for c in checks),
            "topics": [c.as_dict() for c in checks],
        }
        click.echo(json.dumps(body, indent=2))
        return
    for check in checks:
        spec, observed = check.spec, check.observed
        config = ",".join(f"{k}={v}" for k, v in spec.config.items()) or "-"
        have = "missing" if observed is None else f"{observed.partitions} partitions"
        status = "ok" if check.ok else "DIFFERS: " + "; ".join(check.differences)
        click.echo(
            f"{spec.name}  [{spec.role}]  want {spec.partitions} partitions x{spec.replication}"
            f" {config}  broker: {have}  {status}"
        )
    problems = copartition_problems(checks)
    if problems:
        click.echo(describe_problems(problems, settings), err=True)


@click.group()
def topics() -> None:
    """Check or create every topic a stockflow worker needs."""


_FAUST_ID_HELP = (
    "Id of the Faust app stockflow is installed in, which starts the changelog names "
    "(default: STOCKFLOW_APP_ID, the standalone worker's)."
)


@topics.command()
@click.option("--broker", default=None, help="kafka://host:port (default: STOCKFLOW_BROKER).")
@click.option("--faust-id", default=None, help=_FAUST_ID_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
def check(broker: str | None, faust_id: str | None, as_json: bool) -> None:
    """List every topic with its partitions and configs and what differs on the broker; exit 1
    on any difference."""
    settings = _settings(broker)
    checks = _run(settings, faust_id, create=False)
    _report(checks, settings, as_json)
    sys.exit(0 if all(c.ok for c in checks) else 1)


@topics.command()
@click.option("--broker", default=None, help="kafka://host:port (default: STOCKFLOW_BROKER).")
@click.option("--faust-id", default=None, help=_FAUST_ID_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
def create(broker: str | None, faust_id: str | None, as_json: bool) -> None:
    """Create the missing topics (none while existing ones disagree on partitions); exit 1 if
    any is still missing or disagrees."""
    settings = _settings(broker)
    checks = _run(settings, faust_id, create=True)
    _report(checks, settings, as_json)
    failed = copartition_problems(checks) or [c for c in checks if c.missing]
    sys.exit(1 if failed else 0)
