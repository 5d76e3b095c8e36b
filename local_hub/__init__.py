"""An embedded IoT Hub that the official Azure IoT SDKs talk to over their real wire protocols.

- `LocalHub(data_dir, host=...)`: a hub in this process (`with LocalHub(...) as hub:`), with its
  connection strings and CA (`hub.service_connection_string`, `hub.ca_certificate_path`).
- `serve(...)` / `HubServer`: the hub as a service (`twinfleet hub serve`), writing `hub.json`.
- `HubError`: the root of what the hub refuses with.
- `SecretRedactor`, `install_redactor()`: keep keys and signatures out of every log.

`LocalHub`, `HubServer` and `serve` are imported on first use, so a process that needs only the
redactor or the errors (the `twinfleet` CLI's start) does not load the hub's server stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from local_hub.errors import HubError
from local_hub.redacting import SecretRedactor, install_redactor

if TYPE_CHECKING:
    from local_hub.hub import LocalHub
    from local_hub.server import HubServer, serve

__all__ = ["HubError", "HubServer", "LocalHub", "SecretRedactor", "install_redactor", "serve"]

_LAZY = {"LocalHub": "local_hub.hub", "HubServer": "local_hub.server", "serve": "local_hub.server"}


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'local_hub' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
