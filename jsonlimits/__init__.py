"""JSON that crossed the wire, parsed with limits before anything recurses.

A dependency-free package (the standard library only) shared by the two sides of the wire: the
local hub parses every body, token and MQTT payload with `loads`, and the device agent checks every
desired patch and method payload the device SDK hands it with `check`. It imports nothing of
ours and nothing outside the standard library, so `local_hub` (which may import only `queries`)
and `device_agent` (which may import only the `patterns` contracts) can both depend on it
without either learning about the other.
"""

from jsonlimits.limits import DEFAULT_LIMITS, Limits
from jsonlimits.parsing import JSONRefused, check, loads

__all__ = ["DEFAULT_LIMITS", "JSONRefused", "Limits", "check", "loads"]
