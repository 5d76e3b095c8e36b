"""`Methods`: direct methods, called on one device and answered while it is connected."""

from __future__ import annotations

from typing import Any

from twin_manager import models
from twin_manager._sdk import Sdk

__all__ = ["Methods"]


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
        result = self._sdk.invoke_method(
            device_id,
            {
                "methodName": method,
                "payload": payload,
                "responseTimeoutInSeconds": timeout,
                "connectTimeoutInSeconds": connect_timeout,
            },
        )
        return models.MethodResult.model_validate(result)
