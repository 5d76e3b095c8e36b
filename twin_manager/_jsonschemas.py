"""A fleet scheme written as JSON Schema, made into the pydantic model it describes.

One checker serves both ways of declaring a scheme: a JSON Schema file becomes a model, and the
model is checked as one written in Python would be. What is understood (what pydantic's
`model_json_schema()` writes, and the common hand-written forms):

- `type` (one or a list), `enum`, `const`, `anyOf` / `oneOf` (a union), `$ref` to `#/$defs/...`
  or `#/definitions/...`;
- objects: `properties`, `required`, `additionalProperties`; an object with `properties` is
  closed (its properties are all there is) unless it says `"additionalProperties": true`, as a
  pydantic model is; an object without `properties` holds anything;
- arrays: `items`, `minItems`, `maxItems`;
- numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`;
  strings: `minLength`, `maxLength`, `pattern`;
- annotations that constrain nothing (`title`, `description`, `default`, `examples`, `format`,
  `$schema`, `$id`, `$comment`, `deprecated`, `readOnly`, `writeOnly`).

Any other keyword is refused by name rather than ignored, so a constraint the file states is
never silently not checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from twin_manager import errors

__all__ = ["model_of"]

_IGNORED = frozenset({"title", "description", "default", "examples", "format", "$schema",
                      "$id", "$comment", "deprecated", "readOnly", "writeOnly", "$defs",
                      "definitions"})  # fmt: skip
_UNDERSTOOD = frozenset({"type", "enum", "const", "anyOf", "oneOf", "$ref", "properties",
                         "required", "additionalProperties", "items", "minItems", "maxItems",
                         "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                         "multipleOf", "minLength", "maxLength", "pattern"})  # fmt: skip
_CONSTRAINTS = {"minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt",
                "exclusiveMaximum": "lt", "multipleOf": "multiple_of", "minLength": "min_length",
                "maxLength": "max_length", "pattern": "pattern", "minItems": "min_length",
                "maxItems": "max_length"}  # fmt: skip
_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                            "null": type(None)}  # fmt: skip


def model_of(schema: Any, source: str) -> type[BaseModel]:
    """The model a JSON Schema of an object describes.

    Raises:
        InvalidScheme: the schema is not an object schema, or uses a keyword not understood.
    """
    if not isinstance(schema, Mapping) or "properties" not in schema:
        raise errors.InvalidScheme(
            f"{source} is not a scheme: it must be a JSON Schema of an object with "
            f'"properties" (at least "tags").',
            source=source,
        )
    model = _Builder(schema, source).type_of(schema, "Scheme", "")
    if not (isinstance(model, type) and issubclass(model, BaseModel)):  # an object, checked above
        raise errors.InvalidScheme(f"{source} does not describe an object.", source=source)
    return model


class _Builder:
    def __init__(self, root: Mapping[str, Any], source: str) -> None:
        self.root = root
        self.source = source
        self.made: dict[str, Any] = {}

    def refuse(self, where: str, why: str) -> errors.InvalidScheme:
        return errors.InvalidScheme(f"{self.source}, at {where or 'the top'}: {why}.",
                                    source=self.source)  # fmt: skip

    def type_of(self, schema: Any, name: str, where: str) -> Any:
        """The annotation (with its constraints) for a sub-schema."""
        if schema is True or schema == {}:
            return Any
        if not isinstance(schema, Mapping):
            raise self.refuse(where, f"{schema!r} is not a schema")
        unknown = sorted(set(schema) - _IGNORED - _UNDERSTOOD)
        if unknown:
            raise self.refuse(where, f"the keyword(s) {', '.join(unknown)} are not understood "
                                     "here; express the scheme with the ones listed in "
                                     "twin_manager._jsonschemas")  # fmt: skip
        if "$ref" in schema:
            return self.ref(schema["$ref"], where)
        if "const" in schema:
            return Literal[schema["const"]]
        if "enum" in schema:
            return Literal[tuple(schema["enum"])]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.type_of(s, f"{name}{i}", f"{where}/{key}/{i}")
                           for i, s in enumerate(schema[key])]  # fmt: skip
                union = options[0]
                for option in options[1:]:
                    union = union | option
                return union
        kind = schema.get("type")
        if isinstance(kind, list):
            return self.type_of({**schema, "anyOf": [{**schema, "type": k} for k in kind],
                                 "type": None}, name, where)  # fmt: skip
        constraints = {_CONSTRAINTS[k]: v for k, v in schema.items() if k in _CONSTRAINTS}
        if kind == "object" or "properties" in schema:
            base: Any = self.obj(schema, name, where)
        elif kind == "array":
            base = list[self.type_of(schema.get("items", True), f"{name}Item", f"{where}/items")]  # type: ignore[misc]
        elif kind in _SCALARS:
            base = _SCALARS[kind]
        elif kind is None:
            base = Any
        else:
            raise self.refuse(where, f'"type": {kind!r} is not a JSON Schema type')
        return Annotated[base, Field(**constraints)] if constraints else base

    def ref(self, ref: Any, where: str) -> Any:
        match = re.fullmatch(r"#/(\$defs|definitions)/([^/]+)", ref if isinstance(ref, str) else "")
        if match is None:
            raise self.refuse(where, f"$ref {ref!r} is not a reference into #/$defs")
        name = match.group(2)
        if name not in self.made:
            target = self.root.get(match.group(1), {}).get(name)
            if target is None:
                raise self.refuse(where, f"$ref {ref!r} names no definition")
            self.made[name] = Any  # a placeholder while it is made: no recursive schemes
            self.made[name] = self.type_of(target, name, ref[1:])
        return self.made[name]

    def obj(self, schema: Mapping[str, Any], name: str, where: str) -> Any:
        properties = schema.get("properties")
        if properties is None:
            return dict[str, Any]
        if not isinstance(properties, Mapping):
            raise self.refuse(where, '"properties" must be an object')
        extra = schema.get("additionalProperties", False)
        if extra not in (True, False):
            raise self.refuse(where, '"additionalProperties" must be true or false here')
        required = set(schema.get("required", ()))
        fields: dict[str, Any] = {}
        for i, (key, sub) in enumerate(properties.items()):
            annotation = self.type_of(sub, _title(key), f"{where}/properties/{key}")
            # Python names of their own, the property names as aliases: a tag may be called
            # `json` or `model_id` without shadowing pydantic's own attributes.
            if key in required:
                fields[f"field_{i}"] = (annotation, Field(alias=key))
            else:
                default = sub.get("default") if isinstance(sub, Mapping) else None
                optional = annotation | None
                fields[f"field_{i}"] = (optional, Field(default=default, alias=key))
        config = ConfigDict(extra="allow" if extra else "ignore")
        title = schema.get("title")
        model_name = re.sub(r"\W", "_", title) if isinstance(title, str) and title else name
        return create_model(model_name, __config__=config, **fields)


def _title(key: str) -> str:
    return re.sub(r"\W", "_", key[:1].upper() + key[1:]) or "Field"
