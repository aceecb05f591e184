"""The ``components/schemas`` of the worker's OpenAPI document (:mod:`stockflow.web.openapi`).

Event schemas come from the pydantic models of the event contract (:mod:`stockflow.models`) and
the client's answers (:mod:`stockflow.client.matching`); the requests and the read model's
answers are described here by hand, after :mod:`stockflow.web.views`. They are kept apart from
the paths and operations, which refer to them by name (:func:`schema_ref`).
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel

from stockflow.client.matching import CancelAnswer, Outcome, PayAnswer
from stockflow.models import OrderLine

__all__ = ["TEXT", "component_schemas", "schema_ref"]

REF = "#/components/schemas/{model}"
TEXT = "^[^\\ud800-\\udfff]*$"
"""Ids and reasons are Unicode text without lone surrogates (which JSON can carry and no
Kafka key or UTF-8 encoder can): the API answers 400 to them."""
_MODELS: tuple[type[BaseModel], ...] = (
    OrderLine,
    *get_args(Outcome),  # the answers of the writes are the client's (orders_api)
    *get_args(PayAnswer),
    *get_args(CancelAnswer),
)


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An object schema; every property is required unless ``required`` says which are."""
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
    }


def _one_of(union: object) -> dict[str, Any]:
    """One of the event models of a union of the client's (:mod:`stockflow.client.matching`)."""
    return {"oneOf": [schema_ref(model.__name__) for model in get_args(union)]}


def _events_answer(union: object) -> dict[str, Any]:
    """``{order_id, events}``: a payment's or cancellation's answer."""
    return _object(
        {"order_id": {"type": "string"}, "events": {"type": "array", "items": _one_of(union)}}
    )


def component_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template=REF, mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["OrderLine"]["properties"]["product_id"]["pattern"] = TEXT
    nullable_int = {"type": ["integer", "null"]}
    nullable_str = {"type": ["string", "null"]}
    schemas.update(
        {
            "Error": _object({"error": {"type": "string"}}),
            "FieldErrors": _object(
                {
                    "error": {"type": "string"},
                    "fields": {
                        "type": "array",
                        "items": _object(
                            {"field": {"type": "string"}, "message": {"type": "string"}}
                        ),
                    },
                }
            ),
            "OrderRequest": {
                "type": "object",
                "description": "The fields of OrderPlaced; other fields are ignored.",
                "required": ["order_id", "lines"],
                "properties": {
                    "type": {"const": "OrderPlaced"},
                    "order_id": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 256,
                        "pattern": TEXT,
                    },
                    "lines": {"type": "array", "minItems": 1, "items": schema_ref("OrderLine")},
                    "fulfilment": {
                        "enum": ["all_or_nothing", "partial"],
                        "default": "all_or_nothing",
                    },
                    "reservation_ttl": {
                        "type": ["number", "null"],
                        "exclusiveMinimum": 0,
                        "maximum": 365 * 24 * 3600,
                    },
                },
            },
            "CancelRequest": {
                "type": "object",
                "properties": {
                    "reason": {"type": ["string", "null"], "maxLength": 1024, "pattern": TEXT}
                },
            },
            "Outcome": _one_of(Outcome),
            "Pending": _object(
                {
                    "order_id": {"type": "string"},
                    "status": {"const": "pending"},
                    "location": {"type": "string"},
                }
            ),
            "Conflict": _object(
                {
                    "error": {"type": "string"},
                    "order_id": {"type": "string"},
                    "differences": {"type": "array", "items": {"type": "string"}},
                    "outcome": {"oneOf": [schema_ref("Outcome"), {"type": "null"}]},
                }
            ),
            "PayAnswer": _events_answer(PayAnswer),
            "CancelAnswer": _events_answer(CancelAnswer),
            "Stock": _object(
                required=["product_id", "on_hand", "reserved", "available", "freshness"],
                properties={
                    "product_id": {"type": "string"},
                    "on_hand": {"type": "integer"},
                    "reserved": {"type": "integer"},
                    "available": {"type": "integer"},
                    "freshness": {"type": "object"},
                    "reservation": {"oneOf": [schema_ref("Reservation"), {"type": "null"}]},
                },
            ),
            "Reservation": _object(
                required=["order_id", "quantity", "status", "expires_at"],
                properties={
                    "order_id": {"type": "string"},
                    "quantity": {"type": "integer"},
                    "status": {"enum": ["pending", "confirmed", "released", "refused"]},
                    "release_reason": nullable_str,
                    "refusal": nullable_str,
                    "available": nullable_int,
                    "expires_at": {"type": "string"},
                    "finished_at": nullable_str,
                },
            ),
            "OrderState": _object(
                required=["order_id", "status", "fulfilment", "lines", "freshness"],
                properties={
                    "order_id": {"type": "string"},
                    "status": {
                        "enum": [
                            "reserving",
                            "reserved",
                            "rejected",
                            "confirmed",
                            "cancelled",
                            "expired",
                        ]
                    },
                    "fulfilment": {"enum": ["all_or_nothing", "partial"]},
                    "lines": {
                        "type": "array",
                        "items": _object(
                            required=["product_id", "quantity", "answer", "action"],
                            properties={
                                "product_id": {"type": "string"},
                                "quantity": {"type": "integer"},
                                "answer": {"enum": ["pending", "reserved", "refused"]},
                                "reason": nullable_str,
                                "available": nullable_int,
                                "action": {"enum": ["reserve", "confirm", "release", "none"]},
                                "release_reason": nullable_str,
                            },
                        ),
                    },
                    "placed_at": {"type": "string"},
                    "deadline": {"type": "string"},
                    "expires_at": {"type": "string"},
                    "finished_at": nullable_str,
                    "rejection": nullable_str,
                    "pay_requested": {"type": "boolean"},
                    "cancel_requested": {"type": "boolean"},
                    "freshness": {"type": "object"},
                },
            ),
        }
    )
    return schemas
