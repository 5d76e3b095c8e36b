"""The public surface of each package changes only on purpose."""

import importlib

import pytest

PACKAGES = [
    "jsonlimits",
    "queries",
    "local_hub",
    "twin_manager",
    "device_agent",
    "patterns",
    "twinfleet",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_declares_its_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert isinstance(exported, list)
    for public in exported:
        assert hasattr(module, public), f"{name}.__all__ names {public!r}, which it lacks"
