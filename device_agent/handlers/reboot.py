"""The `reboot` method: answer, wait the delay, report the reboot, then reboot."""

from __future__ import annotations

import asyncio

from pydantic import ValidationError

from device_agent.handlers import api
from device_agent.platforms import RebootRequested
from patterns.contracts import methods, times

__all__ = ["RebootHandler"]


class RebootHandler:
    kind = "reboot"
    method = methods.REBOOT

    async def invoke(self, call: api.Invocation, agent: api.Agent) -> None:
        try:
            payload = methods.RebootPayload.model_validate(call.payload or {})
        except ValidationError as exc:
            await call.answer(400, {"error": str(exc.errors()[0]["msg"])})
            return
        await call.answer(200, {"accepted": True, "delay": payload.delay})
        await asyncio.sleep(payload.delay)
        agent.going_down()  # before the report: a caller who sees it must not reach this boot
        reported = methods.RebootReported(last_reboot=times.iso_now(),
                                          campaign_id=payload.campaign_id)  # fmt: skip
        agent.report({"reboot": reported.model_dump(by_alias=True, mode="json")})
        await agent.flush(10)
        try:
            agent.platform.reboot()
        except RebootRequested:
            pass
        agent.reboot()
