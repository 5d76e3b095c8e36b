"""`twinfleet patterns list`: the installed patterns, their parameters, and where they come from."""

from __future__ import annotations

import json
from typing import Any, get_args

import typer
from rich.console import Console
from rich.table import Table

from patterns import api

__all__ = ["app", "describe_params"]

app = typer.Typer(help="The patterns campaigns can apply.", no_args_is_help=True)


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not get_args(annotation) else None
    return text or str(annotation).replace("typing.", "").replace("NoneType", "None")


def describe_params(pattern: api.Pattern) -> str:
    """`name: type` of each parameter (`=default` when it has one), `kind` left out."""
    parts = []
    for name, field in pattern.params.model_fields.items():
        if name == "kind":
            continue
        text = f"{name}: {_type_name(field.annotation)}"
        if not field.is_required():
            text += f" = {field.get_default(call_default_factory=True)!r}"
        parts.append(text)
    return ", ".join(parts)


@app.command("list")
def list_patterns(
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON: each pattern with its parameters' JSON Schema."
    ),
) -> None:
    """Every installed pattern: built-in or from a package's `twinfleet.patterns` entry point."""
    if as_json:
        typer.echo(json.dumps([{"kind": p.kind, "description": p.description,
                                "module": type(p).__module__,
                                "params": p.params.model_json_schema()}
                               for p in api.registry()], indent=2))  # fmt: skip
        return
    table = Table("kind", "parameters", "description", "module")
    for pattern in api.registry():
        table.add_row(pattern.kind, describe_params(pattern), pattern.description,
                      type(pattern).__module__)  # fmt: skip
    Console(width=200).print(table)
