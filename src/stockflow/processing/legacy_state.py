"""State written by versions before 0.x (pydantic-dumped JSON objects, ``{...}``), read back.

Such a value is validated by pydantic against a *mirror* of its dataclass: a plain dataclass
made once per class with the same fields, types and defaults (nested dataclasses mirrored
too), then copied field by field into the class itself. Validating into the core's
dataclasses directly tied them to how pydantic builds an object (it fills ``__dict__`` or
the slots); a compiled build of the core (mypyc) has neither, and read every such value as
an error (``'Stock' object has no attribute '__dict__'``). Rare by design: a table written
by an older version is read once per key, then written back in the compact form.
"""

from __future__ import annotations

import operator
import types
from dataclasses import MISSING, Field, field, fields, is_dataclass, make_dataclass
from functools import reduce
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from pydantic import TypeAdapter

__all__ = ["decode_legacy"]

T = TypeVar("T")

_MIRRORS: dict[type, type] = {}
"""Each dataclass read so far, to its mirror."""
_ORIGINALS: dict[type, type] = {}
"""Each mirror, to the dataclass it mirrors."""
_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def decode_legacy(kind: type[T], raw: bytes) -> T:
    """``raw``, a JSON object pydantic once dumped from a ``kind``, as a ``kind`` (validated as
    pydantic validated it then). Raises pydantic's ``ValidationError`` when it is not one."""
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(_mirror(kind))
    value: T = _original(adapter.validate_json(raw))
    return value


def _mirror(kind: type) -> type:
    mirror = _MIRRORS.get(kind)
    if mirror is None:
        hints = get_type_hints(kind)
        specs: list[tuple[str, Any] | tuple[str, Any, Field[Any]]] = []
        for each in fields(kind):
            hint = _mirrored(hints[each.name])
            if each.default is not MISSING:
                specs.append((each.name, hint, field(default=each.default)))
            elif each.default_factory is not MISSING:
                specs.append((each.name, hint, field(default_factory=each.default_factory)))
            else:
                specs.append((each.name, hint))
        mirror = make_dataclass(f"Legacy{kind.__name__}", specs)
        _MIRRORS[kind], _ORIGINALS[mirror] = mirror, kind
    return mirror


def _mirrored(hint: Any) -> Any:
    """``hint`` with every dataclass in it replaced by its mirror (the state's types nest them
    directly, in a tuple or in an optional)."""
    if isinstance(hint, type) and is_dataclass(hint):
        return _mirror(hint)
    args = get_args(hint)
    origin = get_origin(hint)
    if origin is tuple:
        return types.GenericAlias(tuple, tuple(_mirrored(arg) for arg in args))  # keeps a ...
    if origin is Union or origin is types.UnionType:
        return reduce(operator.or_, [_mirrored(arg) for arg in args])
    return hint


def _original(value: Any) -> Any:
    kind = _ORIGINALS.get(type(value))
    if kind is not None:
        return kind(*[_original(getattr(value, each.name)) for each in fields(value)])
    if type(value) is tuple:
        return tuple(_original(item) for item in value)
    return value
