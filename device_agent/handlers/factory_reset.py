"""The `factoryReset` method: answer, wait the delay, erase through the platform, forget every
handler's saved state, and report the reset completed (or failed)."""

from __future__ import annotations

import asyncio

from pydantic import ValidationError

from device_agent.handlers import api
from patterns.contracts import methods, times

__all__ = ["FactoryResetHandler"]

SECTION = "factoryReset"


class FactoryResetHandler:
    kind = "factoryReset"
    method = methods.FACTORY_RESET

    async def invoke(self, call: api.Invocation, agent: api.Agent) -> None:
        try:
            payload = methods.FactoryResetPayload.model_validate(call.payload or {})
        except ValidationError as exc:
            await call.answer(400, {"error": str(exc.errors()[0]["msg"])})
            return
        await call.answer(200, {"accepted": True, "delay": payload.delay})
        await asyncio.sleep(payload.delay)
        report = methods.FactoryResetReported(
            status=methods.FactoryResetStatus.IN_PROGRESS, campaign_id=payload.campaign_id
        )
        agent.report({SECTION: report.model_dump(by_alias=True, mode="json")})
        try:
            await asyncio.to_thread(agent.platform.factory_reset)
        except Exception as exc:
            report = report.model_copy(
                update={"status": methods.FactoryResetStatus.FAILED, "error": str(exc)[:200]}
            )
        else:
            agent.reset_handlers()
            report = report.model_copy(
                update={
                    "status": methods.FactoryResetStatus.COMPLETED,
                    "last_factory_reset": times.iso_now(),
                }
            )
        agent.report({SECTION: report.model_dump(by_alias=True, mode="json")})
