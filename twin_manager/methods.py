"""`Methods`: direct methods, called on one device and answered while it is connected."""

from __future__ import annotations

from typing import Any

from twin_manager import models, raw
from twin_manager._sdk import Sdk

__all__ = ["Methods", "method_request"]


def method_request(
    method: str, payload: Any, timeout: int, connect_timeout: int
) -> raw.RawMethodRequest:
    """A direct method call as IoT Hub takes it (alone, or in a job)."""
    return {
        "methodName": method,
        "payload": payload,
        "responseTimeoutInSeconds": timeout,
        "connectTimeoutInSeconds": connect_timeout,
    }


class Methods:
    """Direct methods of one hub's devices (`fleet.methods`)."""

    def __init__(self, sdk: Sdk) -> None:
        self._sdk = sdk

    def invoke(
        self,
        device_id: str,
        method: str,
        payload: Any = None,
        *,
        timeout: int = 30,
        connect_timeout: int = 0,
    ) -> models.MethodResult:
        """Call a direct method and return the device's status and payload.

        Raises:
            DeviceNotOnline: the device is not connected (within `connect_timeout`).
            MethodTimeout: it did not answer within `timeout` seconds.
        """
        request = method_request(method, payload, timeout, connect_timeout)
        result = self._sdk.invoke_method(device_id, request)
        return models.MethodResult.model_validate(result)
