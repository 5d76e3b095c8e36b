"""The fault injector: at random moments it SIGKILLs the hub, the campaign controller or a group
of agents (each is started again after a pause), cuts every connection through a proxy, refuses
connections for a while (a partition), or slows a proxy down.

It is one coroutine over a `Target` (what the soak lets it break), drawing from a seeded random
generator so a run can be replayed; `Target` is a protocol so the injector holds no process
handling of its own.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from benchmarks.soak import proxying

__all__ = ["KINDS", "Injector", "Target"]

log = logging.getLogger(__name__)


class Target(Protocol):
    """What the injector may break; the soak implements it."""

    mqtt: proxying.Proxy
    rest: proxying.Proxy

    async def kill_hub(self, down_for: float) -> bool: ...

    async def kill_controller(self, down_for: float) -> bool: ...

    async def kill_agents(self, rng: random.Random, down_for: float) -> bool: ...

    def disturb(self, devices: list[str] | None) -> None: ...


async def _kill_hub(target: Target, rng: random.Random) -> bool:
    return await target.kill_hub(rng.uniform(0.5, 4.0))


async def _kill_controller(target: Target, rng: random.Random) -> bool:
    return await target.kill_controller(rng.uniform(0.5, 3.0))


async def _kill_agents(target: Target, rng: random.Random) -> bool:
    return await target.kill_agents(rng, rng.uniform(0.5, 5.0))


async def _cut_mqtt(target: Target, rng: random.Random) -> bool:
    target.disturb(None)
    await target.mqtt.cut()
    return True


async def _cut_rest(target: Target, rng: random.Random) -> bool:
    await target.rest.cut()
    return True


async def _partition(target: Target, rng: random.Random) -> bool:
    target.disturb(None)
    proxy = rng.choice([target.mqtt, target.rest])
    await proxy.cut(refuse_for=rng.uniform(2.0, 8.0))
    return True


async def _delay(target: Target, rng: random.Random) -> bool:
    proxy = rng.choice([target.mqtt, target.rest])
    proxy.slow_down(rng.uniform(0.05, 1.5))
    await asyncio.sleep(rng.uniform(2.0, 10.0))
    proxy.slow_down(0.0)
    target.disturb(None)
    return True


# kind -> (weight, action)
KINDS: dict[str, tuple[float, Callable[[Target, random.Random], Awaitable[bool]]]] = {
    "SIGKILL hub": (1.0, _kill_hub),
    "SIGKILL controller": (1.5, _kill_controller),
    "SIGKILL agents": (2.0, _kill_agents),
    "cut MQTT connections": (1.5, _cut_mqtt),
    "cut REST connections": (1.5, _cut_rest),
    "partition (refuse connections)": (1.0, _partition),
    "delay a link": (1.0, _delay),
}


class Injector:
    """Injects a fault every `interval` seconds on average until `stop` is set.

    Args:
        target: what to break.
        seed: the random generator's seed.
        interval: the mean pause between faults, in seconds.
        overlap: how many faults may be under way at once.
    """

    def __init__(self, target: Target, seed: int, interval: float, overlap: int = 3) -> None:
        self.target = target
        self.overlap = overlap
        self.rng = random.Random(seed)
        self.interval = interval
        self.counts: collections.Counter[str] = collections.Counter()

    async def run(self, stop: asyncio.Event) -> None:
        """Start faults until `stop`; up to `overlap` run at once (a cut during a hub restart),
        and the last ones finish before this returns."""
        names = list(KINDS)
        weights = [KINDS[name][0] for name in names]
        running: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.rng.expovariate(1 / self.interval))
                break
            except TimeoutError:
                pass
            if len(running) >= self.overlap:
                continue
            task = asyncio.create_task(self._inject(self.rng.choices(names, weights)[0]))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)

    async def _inject(self, kind: str) -> None:
        started = time.monotonic()
        try:
            injected = await KINDS[kind][1](self.target, self.rng)
        except Exception:
            log.exception("injecting %s failed", kind)
            return
        if injected:  # not, e.g., when no controller was running
            self.counts[kind] += 1
            log.info("fault: %s (%.1f s)", kind, time.monotonic() - started)
