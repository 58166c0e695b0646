"""Type hints and dataclasses to JSON Schema 2020-12 (the dialect of OpenAPI 3.1)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import get_args, get_origin, get_type_hints

from ocrstream.core import events

__all__ = [
    "REF",
    "Schema",
    "SchemaBuilder",
    "docstring",
    "event_classes",
    "non_null",
    "nullable",
    "ref",
]

Schema = dict[str, object]

REF = "#/components/schemas/"


def ref(name: str) -> Schema:
    return {"$ref": REF + name}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def event_classes() -> dict[str, type[events.Event]]:
    """Every event class, keyed by its SPEC type, in ``EVENT_TYPES`` order.

    Raises:
        RuntimeError: ``Event`` and ``EVENT_TYPES`` disagree.
    """
    classes = {cls.type: cls for cls in get_args(events.Event)}
    if set(classes) != set(events.EVENT_TYPES):
        raise RuntimeError("ocrstream.core.events.Event and EVENT_TYPES disagree")
    return {name: classes[name] for name in events.EVENT_TYPES}


def docstring(cls: type) -> str | None:
    doc = cls.__doc__
    # dataclasses invent ``Name(*, field: type, ...)`` when a class has no docstring.
    if not doc or doc.startswith(f"{cls.__name__}("):
        return None
    return " ".join(doc.strip().split("\n\n")[0].split())


class SchemaBuilder:
    """Turns type hints and dataclasses into JSON Schema (2020-12, as OpenAPI 3.1 uses)."""

    def __init__(self) -> None:
        self.components: dict[str, Schema] = {}

    def dataclass_ref(
        self, cls: type, *, overrides: Mapping[str, Schema] | None = None, name: str | None = None
    ) -> Schema:
        """A ``$ref`` to ``cls``'s object schema, which is built on first use."""
        name = name or cls.__name__
        if name in self.components:
            return ref(name)
        self.components[name] = {}  # placeholder, so a recursive type terminates
        overrides = overrides or {}
        hints = get_type_hints(cls)
        properties: dict[str, Schema] = {}
        for field in dataclasses.fields(cls):
            if field.name in overrides:
                properties[field.name] = overrides[field.name]
            else:
                properties[field.name] = self.schema_of(hints[field.name])
        schema: Schema = {"type": "object", "title": name}
        description = docstring(cls)
        if description:
            schema["description"] = description
        # ``dataclasses.asdict`` always writes every field, so every one is required.
        schema |= {
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
        self.components[name] = schema
        return ref(name)

    def schema_of(self, hint: object) -> Schema:
        """The JSON Schema of one type hint.

        Raises:
            TypeError: a type with no JSON form here (add it rather than guess).
        """
        simple: dict[object, Schema] = {
            type(None): {"type": "null"},
            bool: {"type": "boolean"},
            int: {"type": "integer"},
            float: {"type": "number"},
            str: {"type": "string"},
            datetime: {"type": "string", "format": "date-time"},
            object: {},
            typing.Any: {},
        }
        if hint in simple:
            return dict(simple[hint])
        if isinstance(hint, type) and issubclass(hint, Enum):
            return {"type": "string", "enum": [str(member.value) for member in hint]}
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self.dataclass_ref(hint)
        origin, args = get_origin(hint), get_args(hint)
        if origin in (types.UnionType, typing.Union):
            return {"anyOf": [self.schema_of(arg) for arg in args]}
        if origin is typing.Literal:
            return {"enum": list(args)}
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.schema_of(args[0])}
            if args and all(arg == args[0] for arg in args):
                item = self.schema_of(args[0])
                return {
                    "type": "array",
                    "items": item,
                    "minItems": len(args),
                    "maxItems": len(args),
                }
            return {
                "type": "array",
                "prefixItems": [self.schema_of(arg) for arg in args],
                "items": False,
            }
        if origin in (list, Sequence, frozenset, set):
            return {"type": "array", "items": self.schema_of(args[0]) if args else {}}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.schema_of(args[1])}
        raise TypeError(f"no JSON Schema for the type hint {hint!r}")


def non_null(schema: Schema) -> Schema:
    """``schema`` without its ``null`` alternative (``X | None`` → ``X``)."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        rest = [option for option in options if option != {"type": "null"}]
        if len(rest) == 1 and isinstance(rest[0], dict):
            return dict(rest[0])
    return schema
