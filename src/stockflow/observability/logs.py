"""Logs: one JSON object per line (optional) and decision log lines.

JSON logs
    ``STOCKFLOW_LOG_JSON=true`` (:attr:`Settings.log_json`, default off) makes the worker log
    through :class:`JsonFormatter`: ``{"ts", "level", "logger", "message", ...}`` plus every
    ``extra`` field of the record and ``exc`` for a traceback. :func:`json_logging_config` is
    the ``logging_config`` stockflow passes to Faust; an app embedding stockflow can install
    :class:`JsonFormatter` on its own handlers.

Decision logs
    ``STOCKFLOW_LOG_DECISIONS=true`` (:attr:`Settings.log_decisions`, default off) logs every
    decision at INFO on the ``stockflow.decisions`` logger, one line per (order, product) pair,
    each carrying ``order_id`` and ``product_id`` fields (``null`` where a decision has none: a
    cancellation ignored for an unknown order, a shortfall with no order at risk). Off, it costs
    one ``is None`` test per record: the outputs are not even parsed. A setting rather than the
    DEBUG level, because deciding whether DEBUG is enabled costs a logger lookup per record and
    because the decision log is wanted in production (at INFO) without Faust's DEBUG noise.

SASL tokens
    :func:`redact_sasl_tokens` keeps the SASL credentials out of aiokafka's DEBUG log; the
    settings apply it whenever ``STOCKFLOW_SECURITY_PROTOCOL`` is ``SASL_*``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stockflow.processing.records import Step

__all__ = [
    "DECISION_LOGGER",
    "DecisionLog",
    "JsonFormatter",
    "json_logging_config",
    "redact_sasl_tokens",
]

DECISION_LOGGER = "stockflow.decisions"

_STANDARD = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: ``ts`` (UTC ISO 8601, ms), ``level``, ``logger``,
    ``message``, every ``extra`` field, and ``exc``/``stack`` when present."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        payload: dict[str, Any] = {
            "ts": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def json_logging_config() -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for Faust's ``logging_config`` setting: Faust's default
    handler (stderr, the level from ``-l``) with :class:`JsonFormatter`. ``merge`` keeps the rest
    of Faust's configuration."""
    return {
        "merge": True,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
    }


class _RedactSaslTokens(logging.Filter):
    """aiokafka logs every request it sends at DEBUG (``conn.send``), SASL tokens included: for
    PLAIN that is ``user\\0user\\0password``, so ``faust worker -l debug`` printed the password
    on every connection (found for issue 7, aiokafka 0.14). The token is replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(map(_is_sasl_token, record.args)):
            record.args = tuple(
                "SaslAuthenticateRequest(<redacted>)" if _is_sasl_token(arg) else arg
                for arg in record.args
            )
        return True


def _is_sasl_token(value: object) -> bool:
    return type(value).__name__.startswith("SaslAuthenticateRequest")


_REDACT_SASL_TOKENS = _RedactSaslTokens()


def redact_sasl_tokens() -> None:
    """Replace the SASL token in aiokafka's DEBUG lines (``aiokafka.conn``) by ``<redacted>``.
    Idempotent: a logger holds a given filter once."""
    logging.getLogger("aiokafka.conn").addFilter(_REDACT_SASL_TOKENS)


class DecisionLog:
    """Logs the decisions among a step's outputs (see the module docstring)."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger(DECISION_LOGGER)
        self.level = level

    def step(self, step: Step) -> None:
        for out in step.outputs:
            if out.role == "reservations":
                self.event(json.loads(out.value))
            elif out.role == "order_replies":
                answer = json.loads(out.value)
                if answer.get("status") == "refused":
                    self._line(
                        "LineRefused",
                        answer["order_id"],
                        answer["product_id"],
                        quantity=answer.get("quantity"),
                        reason=answer.get("reason"),
                        available=answer.get("available"),
                    )

    def event(self, event: dict[str, Any]) -> None:
        """One public decision event: one log line per (order, product) it concerns."""
        kind = event.get("type", "?")
        order_id = event.get("order_id")
        if kind == "OrderReserved":
            for line in event.get("lines", ()):
                self._line(kind, order_id, line["product_id"], quantity=line["quantity"])
            for line in event.get("refused", ()):
                self._line(
                    kind,
                    order_id,
                    line["product_id"],
                    quantity=line["quantity"],
                    reason=line.get("reason"),
                    refused=True,
                )
        elif kind == "OrderRejected":
            for line in event.get("lines", ()):
                self._line(
                    kind,
                    order_id,
                    line["product_id"],
                    quantity=line["quantity"],
                    reason=event.get("reason"),
                    line_reason=line.get("reason"),
                    available=line.get("available"),
                )
        elif kind == "StockShortfall":
            for at_risk in event.get("at_risk") or [None]:
                self._line(
                    kind,
                    at_risk,
                    event.get("product_id"),
                    on_hand=event.get("on_hand"),
                    reserved=event.get("reserved"),
                )
        else:
            self._line(
                kind,
                order_id,
                event.get("product_id"),
                quantity=event.get("quantity"),
                reason=event.get("reason"),
            )

    def _line(self, decision: str, order_id: Any, product_id: Any, **fields: Any) -> None:
        details = {k: v for k, v in fields.items() if v is not None}
        text = " ".join(f"{k}={v}" for k, v in details.items())
        self.logger.log(
            self.level,
            "decision %s order_id=%s product_id=%s%s",
            decision,
            order_id,
            product_id,
            f" {text}" if text else "",
            extra={
                "decision": decision,
                "order_id": order_id,
                "product_id": product_id,
                **details,
            },
        )
