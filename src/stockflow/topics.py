"""Every topic a stockflow worker needs, as the settings want it, and what differs on a broker.

Pure: no broker, no Faust. :mod:`stockflow.provisioning` reads the broker and creates what is
missing; the worker (:mod:`stockflow.lifecycle`) and ``stockflow topics check|create`` use both.

Roles and what each topic is created with (``STOCKFLOW_PARTITIONS`` partitions and
``STOCKFLOW_REPLICATION_FACTOR`` replicas unless said otherwise):

- ``input`` (orders, inventory), ``output`` (reservations, dead letters) and ``internal``
  (``{app_id}-product-commands``, ``{app_id}-order-replies``): ``cleanup.policy=delete`` and
  ``retention.ms`` from ``STOCKFLOW_TOPIC_RETENTION`` (default 7 days);
- ``changelog`` (``{faust id}-{app_id}-products-changelog`` and ``...-orders-changelog``, named by
  Faust): ``cleanup.policy=compact``, no retention (the changelog is the tables' only truth);
- ``assignor`` (Faust's ``{faust id}-__assignor-__leader``): one partition, not co-partitioned.

Every topic but the assignor's must have exactly ``STOCKFLOW_PARTITIONS`` partitions: a record
and the table state it changes are found by partition number (co-partitioning).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from stockflow.settings import Settings

__all__ = [
    "ObservedTopic",
    "Role",
    "TopicCheck",
    "TopicSpec",
    "check_topics",
    "copartition_problems",
    "describe_problems",
    "required_topics",
    "topic_names",
]

Role = Literal["input", "output", "internal", "changelog", "assignor"]

_MS = 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as stockflow wants it."""

    name: str
    role: Role
    partitions: int
    replication: int
    config: Mapping[str, str] = field(default_factory=dict)

    @property
    def copartitioned(self) -> bool:
        """Whether it must have ``STOCKFLOW_PARTITIONS`` partitions like every other."""
        return self.role != "assignor"


@dataclass(frozen=True, slots=True)
class ObservedTopic:
    """A topic as the broker describes it. ``config`` holds what the broker reported (tansu
    reports only configs given at creation, so a missing key is not a difference)."""

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TopicCheck:
    """A wanted topic, what the broker has (``None``: missing) and what differs."""

    spec: TopicSpec
    observed: ObservedTopic | None
    differences: tuple[str, ...]

    @property
    def missing(self) -> bool:
        return self.observed is None

    @property
    def partitions_differ(self) -> bool:
        return self.observed is not None and self.observed.partitions != self.spec.partitions

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, object]:
        """The check for ``--json``."""
        observed = self.observed
        return {
            "topic": self.spec.name,
            "role": self.spec.role,
            "partitions": self.spec.partitions,
            "replication": self.spec.replication,
            "config": dict(self.spec.config),
            "exists": observed is not None,
            "broker_partitions": None if observed is None else observed.partitions,
            "broker_config": None if observed is None else dict(observed.config),
            "differences": list(self.differences),
            "ok": self.ok,
        }


def required_topics(settings: Settings, faust_id: str | None = None) -> tuple[TopicSpec, ...]:
    """Every topic the worker reads or writes, with the partitions, replicas and configs it is
    created with. ``faust_id`` is the Faust app's id (changelog and assignor names start with
    it); default ``settings.app_id``, which is what :func:`stockflow.create_app` uses."""
    faust_id = faust_id or settings.app_id
    events = {
        "cleanup.policy": "delete",
        "retention.ms": str(int(settings.topic_retention * _MS)),
    }
    compacted = {"cleanup.policy": "compact"}

    def spec(name: str, role: Role, config: Mapping[str, str]) -> TopicSpec:
        return TopicSpec(name, role, settings.partitions, settings.replication_factor, config)

    tables = (f"{settings.app_id}-products", f"{settings.app_id}-orders")
    return (
        spec(settings.orders_topic, "input", events),
        spec(settings.inventory_topic, "input", events),
        spec(settings.reservations_topic, "output", events),
        spec(settings.dead_letter_topic, "output", events),
        spec(settings.product_commands_topic, "internal", events),
        spec(settings.order_replies_topic, "internal", events),
        *(spec(f"{faust_id}-{table}-changelog", "changelog", compacted) for table in tables),
        TopicSpec(
            f"{faust_id}-__assignor-__leader", "assignor", 1, settings.replication_factor, {}
        ),
    )


def check_topics(
    specs: Iterable[TopicSpec], observed: Mapping[str, ObservedTopic]
) -> list[TopicCheck]:
    """Compare each wanted topic with the broker's (``observed``, by name; absent: missing)."""
    checks = []
    for spec in specs:
        topic = observed.get(spec.name)
        differences: list[str] = []
        if topic is None:
            differences.append("missing")
        else:
            if topic.partitions != spec.partitions:
                differences.append(f"partitions {topic.partitions}, want {spec.partitions}")
            for key, want in spec.config.items():
                have = topic.config.get(key)
                if have is not None and have != want:
                    differences.append(f"{key}={have}, want {want}")
        checks.append(TopicCheck(spec, topic, tuple(differences)))
    return checks


def copartition_problems(checks: Iterable[TopicCheck]) -> list[TopicCheck]:
    """The existing co-partitioned topics whose partition count is not the wanted one: a
    worker must not consume while any is listed."""
    return [c for c in checks if c.spec.copartitioned and c.partitions_differ]


def describe_problems(problems: Iterable[TopicCheck], settings: Settings) -> str:
    """A message naming each topic with its partition count, and how to fix it."""
    problems = list(problems)
    lines = [
        f"stockflow's topics must all have STOCKFLOW_PARTITIONS={settings.partitions} "
        "partitions (they are co-partitioned); on the broker:"
    ]
    lines += [
        f"  {c.spec.name}: {c.observed.partitions if c.observed else 0} partitions"
        for c in problems
    ]
    lines.append(
        "Fix: set STOCKFLOW_PARTITIONS to the input topics' partition count, or recreate the "
        "listed topics with "
        f"{settings.partitions} partitions (a changelog must match its table's input topic), "
        "or use a new STOCKFLOW_APP_ID. `stockflow topics check` lists every topic."
    )
    return "\n".join(lines)


def topic_names(settings: Settings) -> dict[str, str]:
    """Each of stockflow's own topics by the name the processors give its role (``orders``,
    ``inventory``, ``reservations``, ``dead_letters``, ``product_commands``,
    ``order_replies``) -> its configured name."""
    return {
        "orders": settings.orders_topic,
        "inventory": settings.inventory_topic,
        "reservations": settings.reservations_topic,
        "dead_letters": settings.dead_letter_topic,
        "product_commands": settings.product_commands_topic,
        "order_replies": settings.order_replies_topic,
    }
