"""The fleet's metadata scheme: the tags its twins may carry and the properties devices report.

Operators plan tags so devices can be queried and targeted accurately; a scheme makes the plan
checkable. It is a pydantic model with a `tags` field (a model of the tags) and, optionally, a
`reported` field (a model of what devices report: capabilities, and the pattern sections the
fleet queries)::

    class Tags(BaseModel):
        region: Literal["eu-west", "us-east"]
        ring: Literal["canary", "main"] = "main"
        floor: int | None = Field(default=None, ge=0)

    class Fleet(BaseModel):
        tags: Tags
        reported: Capabilities | None = None

or the same as a JSON Schema file (`Fleet.model_json_schema()` writes one; see
`twin_manager._jsonschemas` for the keywords understood). `load_scheme("my_fleet.scheme:Fleet")`
or `load_scheme("scheme.json")` reads either, and `TwinManager(..., scheme=...)` uses it:

- **tag writes** (`update_tags`, `update_twin(tags=...)`, `replace_twin`, twin-update jobs) are
  checked before they are sent. A merge patch is checked as a patch: each tag it names must be
  declared, its value must be valid for the declaration (strictly, as JSON: `"5"` is not an
  int), a `null` (removal) is refused for a required tag; a whole replacement must also hold
  every required tag. `InvalidTags` names the tag and says what the scheme wants.
- **queries** (and job, configuration and campaign conditions) naming a tag or reported path
  the scheme does not declare are refused before they run (`InvalidQuery`, with a caret and a
  "did you mean"), as IoT Hub would silently match nothing.

A model whose `model_config` has `extra="allow"` (in JSON Schema, an object with
`"additionalProperties": true`) leaves what lies below it unconstrained; so does a field that is
not a model (`dict[str, Any]`). The tags `twinfleet` (where campaigns record each device's
progress) and `twinfleetRetired` (a retired device's record) belong to the framework and are
always allowed. Without a scheme nothing is checked.
"""

from __future__ import annotations

import difflib
import importlib
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

import queries
from twin_manager import _jsonschemas, errors

__all__ = ["RESERVED_TAGS", "FleetScheme", "load_scheme"]

# Framework-owned tags, allowed under every scheme: campaign progress (`twinfleet`) and the
# retirement record (`twinfleetRetired`) that every campaign target excludes.
RESERVED_TAGS = frozenset({"twinfleet", "twinfleetRetired"})


@dataclass(frozen=True)
class FleetScheme:
    """A fleet's declared tags and, optionally, reported properties.

    Attributes:
        tags: the model of the tags.
        reported: the model of reported properties, or None to leave them unchecked.
        source: where it was loaded from (for messages).
    """

    tags: type[BaseModel]
    reported: type[BaseModel] | None = None
    source: str = "the fleet's scheme"
    _paths: queries.Scheme = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tags = dict(_tree(self.tags) or {})
        tags.update(dict.fromkeys(RESERVED_TAGS))
        reported = None if self.reported is None else _tree(self.reported)
        object.__setattr__(self, "_paths", queries.Scheme(tags=tags, reported=reported))

    @classmethod
    def of(cls, model: type[BaseModel], source: str | None = None) -> FleetScheme:
        """A scheme from a model with a `tags` field and optionally a `reported` one.

        Raises:
            InvalidScheme: the model has no `tags` field, or a field is not a model.
        """
        where = source or model.__name__
        fields = {wire: info for wire, (_, info) in _names(model).items()}
        unknown = sorted(set(fields) - {"tags", "reported"})
        if "tags" not in fields or unknown:
            raise errors.InvalidScheme(
                f"{where} is not a fleet scheme: it needs a `tags` field (a model of the tags) "
                f"and may have a `reported` field"
                + (f", but it also has {', '.join(map(repr, unknown))}" if unknown else "")
                + ".",
                source=where,
            )
        parts = {name: _model_of(fields[name].annotation) for name in ("tags", "reported")
                 if name in fields}  # fmt: skip
        for name, part in parts.items():
            if part is None:
                raise errors.InvalidScheme(
                    f"The `{name}` field of {where} must be a pydantic model (or one or None).",
                    source=where,
                )
        return cls(tags=parts["tags"], reported=parts.get("reported"),  # type: ignore[arg-type]
                   source=f"the scheme {where}")  # fmt: skip

    @property
    def paths(self) -> queries.Scheme:
        """The declared paths, as the query checker takes them."""
        return self._paths

    def check_tags(self, patch: Mapping[str, Any], *, whole: bool = False) -> None:
        """Check a tags merge patch (or, with `whole`, the complete tags) against the scheme.

        Raises:
            InvalidTags: a tag is not declared, its value is not valid, or a required one is
                removed (or, with `whole`, missing); the message names the tag.
        """
        rest = {k: v for k, v in patch.items() if k not in RESERVED_TAGS}
        _check(self.tags, rest, "tags", whole, self.source)


def load_scheme(spec: str | Path) -> FleetScheme:
    """A scheme from `module:attribute` (a scheme model, or a `FleetScheme`) or a JSON Schema
    file (a path ending in `.json`).

    Raises:
        InvalidScheme: it cannot be found, read or understood (the message says which and why).
    """
    text = str(spec)
    if text.endswith(".json") or isinstance(spec, Path):
        return _from_file(Path(text))
    module_name, _, attribute = text.partition(":")
    if not module_name or not attribute:
        raise errors.InvalidScheme(
            f"{text!r} names no scheme: give `module:Model` (a pydantic model importable from "
            f"here) or the path of a JSON Schema file ending in .json.",
            source=text,
        )
    try:
        value: Any = importlib.import_module(module_name)
        for name in attribute.split("."):
            value = getattr(value, name)
    except (ImportError, AttributeError) as exc:
        raise errors.InvalidScheme(
            f"Cannot load the scheme {text!r}: {exc}. Check the module is importable (on "
            f"PYTHONPATH) and defines {attribute!r}.",
            source=text,
        ) from None
    if isinstance(value, FleetScheme):
        return value
    if isinstance(value, type) and issubclass(value, BaseModel):
        return FleetScheme.of(value, text)
    raise errors.InvalidScheme(
        f"{text} is a {type(value).__name__}, not a scheme: name a pydantic model with a "
        f"`tags` field, or a FleetScheme.",
        source=text,
    )


def _from_file(path: Path) -> FleetScheme:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise errors.InvalidScheme(
            f"The scheme file {path} does not exist.", source=str(path)
        ) from None
    except (OSError, ValueError) as exc:
        raise errors.InvalidScheme(f"Cannot read the scheme file {path}: {exc}.",
                                   source=str(path)) from None  # fmt: skip
    model = _jsonschemas.model_of(schema, str(path))
    return FleetScheme.of(model, str(path))


# -- models as trees of names --------------------------------------------------------------------


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds (`M`, `M | None`, `Annotated[M, ...]`), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_of(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        found = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _model_of(found[0]) if len(found) == 1 else None
    return None


def _names(model: type[BaseModel]) -> dict[str, tuple[str, FieldInfo]]:
    """Wire name (the alias, if any) -> (field name, field)."""
    return {(info.alias or name): (name, info) for name, info in model.model_fields.items()}


def _open(model: type[BaseModel]) -> bool:
    return model.model_config.get("extra") == "allow"


def _tree(model: type[BaseModel]) -> dict[str, Any] | None:
    """The declared names below a model, nested; None where anything goes."""
    if _open(model):
        return None
    tree: dict[str, Any] = {}
    for wire, (_, info) in _names(model).items():
        inner = _model_of(info.annotation)
        tree[wire] = None if inner is None else _tree(inner)
    return tree


# -- checking a patch -----------------------------------------------------------------------------


def _adapter(info: FieldInfo) -> TypeAdapter[Any]:
    """A validator of one field's values, its constraints (`Field(ge=0)`, ...) included."""
    annotation: Any = info.annotation
    if info.metadata:
        annotation = typing.Annotated[annotation, *info.metadata]
    return TypeAdapter(annotation)


def _check(model: type[BaseModel], patch: Mapping[str, Any], where: str, whole: bool,
           source: str) -> None:  # fmt: skip
    declared = _names(model)
    for key, value in patch.items():
        path = f"{where}.{key}"
        if key not in declared:
            if _open(model):
                continue
            close = difflib.get_close_matches(key, list(declared), n=1, cutoff=0.6)
            hint = f"did you mean {where}.{close[0]}? " if close else ""
            known = ", ".join(sorted(declared)) or "none"
            raise errors.InvalidTags(
                f"{path} is not a tag {source} declares; {hint}(it declares {known} there). "
                f"Fix the name, or add the tag to the scheme first.",
                path=path,
            )
        _, info = declared[key]
        if value is None:
            if info.is_required():
                raise errors.InvalidTags(
                    f"{path} is required by {source}; it cannot be removed (set another value "
                    f"instead).",
                    path=path,
                )
            continue
        inner = _model_of(info.annotation)
        if inner is not None and isinstance(value, Mapping):
            _check(inner, value, path, whole, source)
            continue
        try:
            _adapter(info).validate_json(json.dumps(value), strict=True)
        except ValidationError as exc:
            problem = "; ".join(e["msg"] for e in exc.errors())
            raise errors.InvalidTags(
                f"{path} = {json.dumps(value)[:80]} is not valid for {source}: {problem}.",
                path=path,
            ) from None
    if whole:
        missing = [wire for wire, (_, info) in declared.items()
                   if info.is_required() and wire not in patch]  # fmt: skip
        if missing:
            raise errors.InvalidTags(
                f"{where}.{missing[0]} is required by {source}, and the new tags lack it.",
                path=f"{where}.{missing[0]}",
            )
