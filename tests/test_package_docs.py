"""`help(package)` shows the package's own API first: its docstring, which pydoc prints right
after the name, names every public name before the submodule list and the inherited-method
noise of the classes (pydantic models bring thousands of lines of it)."""

from __future__ import annotations

import importlib
import pydoc
import re

import pytest

# Packages whose API is their subpackages rather than names of their own.
SUBPACKAGES = {
    "patterns": ["patterns.api", "patterns.contracts", "patterns.builtin", "patterns.campaigns"],
    "twinfleet": ["twinfleet.cli", "twinfleet.dashboard", "twinfleet.demo"],
}


def _sections(text: str) -> list[tuple[str, str]]:
    """pydoc's sections in order: (heading, body)."""
    parts = re.split(r"^([A-Z][A-Z ]+)$", text, flags=re.MULTILINE)
    return list(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize(
    "name", ["queries", "local_hub", "twin_manager", "device_agent", "patterns", "twinfleet"]
)
def test_help_of_a_package_names_its_api_first(name: str) -> None:
    package = importlib.import_module(name)
    sections = _sections(pydoc.plain(pydoc.render_doc(package)))
    headings = [heading for heading, _ in sections]
    assert headings[:2] == ["NAME", "DESCRIPTION"]
    description = sections[1][1]
    wanted = list(package.__all__) or SUBPACKAGES[name]
    missing = [n for n in wanted if not re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", description)]
    assert missing == [], f"help({name}) does not name {missing} before {headings[2]}"
