"""The `rotateKey` method: take a new symmetric key, save it, reconnect with it, report it.

Written against `device_agent.handlers.api` alone. The handler is also the agent's
`KeyProvider`: it says which keys to connect with, so the device keeps working on whichever
key the hub accepts.

The keys live in `<state_dir>/keys/keys.json` (folder 0700, file 0600, replaced atomically:
write, fsync, rename, fsync the folder): `current` (the key the hub last accepted), `previous`
(the one before it, a fallback) and `pending` (a new key not yet tried). Power may fail at any
point, and every point resumes safely:

1. The method arrives: `pending` is saved *before* the method is answered, so a device that
   acknowledged a key has it on disk. (Cut before the save: the device never had the key; the
   back end's call fails or times out, and the hub still accepts the old key.)
2. The agent reconnects, offering `pending`, then `current`, then `previous`, then the key of
   its settings; the first the hub accepts wins. At every boot it does the same, so a pending
   key saved before a cut is tried at the next start.
3. Connected: the key the hub accepted becomes `current` (the keys offered before it were
   refused and are forgotten), `pending` is cleared, and only then is the outcome reported
   (`rotated`, or `refused` when the hub refused the new key and an old one got in). The
   report is made again at every connect, so one lost to a cut is made at the next boot.

The back end never removes the key the device reports as in use (see
`patterns.builtin.key_rotation`), so a device that is offline, or whose rotation fails, keeps
working on its old key. Keys never appear in logs, errors or reports: only their fingerprints.

The keys are kept in the state folder, not in the settings' key file (which the agent may not
be allowed to write): a device whose state folder is wiped after a completed rotation is left
with the settings' key, which the rotation revoked. Keep the state folder across updates and
factory resets, or give such a device its current key again from the hub.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from device_agent.handlers import api
from device_agent.persistence import StateFile
from patterns.contracts import key_rotation, times

__all__ = ["KeyRotationHandler"]

log = logging.getLogger(__name__)


class KeyRotationHandler:
    """Args:
    flush_timeout: seconds to wait, after reconnecting, for the outcome to reach the hub.
    """

    kind = "keyRotation"
    method = key_rotation.METHOD

    def __init__(self, *, flush_timeout: float = 10) -> None:
        self.flush_timeout = flush_timeout
        self._offered: list[str] = []
        self._configured: str | None = None

    # -- storage -------------------------------------------------------------------------------

    @staticmethod
    def _file(agent: api.Agent) -> StateFile:
        folder = agent.state_dir / "keys"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return StateFile(folder / "keys.json", mode=0o600)

    def _load(self, agent: api.Agent) -> dict[str, Any]:
        try:
            return self._file(agent).load()
        except (OSError, ValueError) as exc:  # unreadable or torn by hand: the settings' key
            log.error("the device's saved keys cannot be read (%s); using the configured key",
                      type(exc).__name__)  # fmt: skip
            return {}

    # -- KeyProvider ---------------------------------------------------------------------------

    def keys(self, configured: str, agent: api.Agent) -> list[str]:
        self._configured = configured
        state = self._load(agent)
        self._offered = [k for k in (state.get(n) for n in ("pending", "current", "previous"))
                         if isinstance(k, str) and k]  # fmt: skip
        return list(self._offered)

    def connected(self, key: str, agent: api.Agent) -> None:
        state = self._load(agent)
        offered = self._offered or [key]
        refused = set(offered[: offered.index(key)] if key in offered else offered)
        before = dict(state)
        pending = state.pop("pending", None)
        if pending:
            rotated = pending == key
            state["status"] = (key_rotation.KeyRotationStatus.ROTATED if rotated
                               else key_rotation.KeyRotationStatus.REFUSED)  # fmt: skip
            state["error"] = None if rotated else (
                "the hub refused the new key; the device went back to its previous key"
            )  # fmt: skip
        if state.get("current") != key:
            kept = [k for k in (state.get("current"), state.get("previous"))
                    if k and k != key and k not in refused]  # fmt: skip
            state.update(current=key, previous=kept[0] if kept else None, since=times.iso_now())
        elif state.get("previous") in refused:
            state["previous"] = None
        if state != before:
            try:
                self._file(agent).save(state)
            except OSError as exc:  # a pending key stays saved, and is offered first next time
                log.error("the device's keys could not be saved (%s)", exc.strerror)
        if pending and pending != key:
            log.warning("the hub refused the new key; connected with the previous one")
        elif pending:
            log.info("connected with the new key (fingerprint %s)", key_rotation.fingerprint(key))
        agent.report({key_rotation.SECTION: self._reported(state, key).wire()})

    @staticmethod
    def _reported(state: dict[str, Any], key: str) -> key_rotation.KeyRotationReported:
        return key_rotation.KeyRotationReported(
            fingerprint=key_rotation.fingerprint(key), since=state.get("since"),
            status=state.get("status"), requested_fingerprint=state.get("requested"),
            campaign_id=state.get("campaignId"), error=state.get("error"),
        )  # fmt: skip

    # -- the method ----------------------------------------------------------------------------

    async def invoke(self, call: api.Invocation, agent: api.Agent) -> None:
        try:
            request = key_rotation.KeyRotationRequest.model_validate(call.payload or {})
        except ValidationError as exc:
            await call.answer(400, {"error": str(exc.errors()[0]["msg"])})
            return
        if self._configured is None:
            await call.answer(409, {"error": "this device does not connect with a symmetric key"})
            return
        key = request.key.get_secret_value()
        new_print = key_rotation.fingerprint(key)
        state = self._load(agent)
        if key in (state.get("current"), state.get("pending")):
            # Delivered again (a retried call): the first delivery does, or did, the work.
            await call.answer(200, {"accepted": True, "fingerprint": new_print})
            return
        state.update(pending=key, requested=new_print, campaignId=request.campaign_id,
                     status=key_rotation.KeyRotationStatus.PENDING, error=None)  # fmt: skip
        try:
            self._file(agent).save(state)
        except OSError as exc:
            reason = f"the new key could not be saved ({exc.strerror or type(exc).__name__})"
            log.error("%s; keeping the current key", reason)
            await call.answer(500, {"error": reason})
            current = state.get("current") or self._configured
            failed = {**state, "pending": None, "status": key_rotation.KeyRotationStatus.ERROR,
                      "error": reason}  # fmt: skip
            agent.report({key_rotation.SECTION: self._reported(failed, current).wire()})
            return
        await call.answer(200, {"accepted": True, "fingerprint": new_print})
        log.info("got a new key (fingerprint %s): reconnecting with it", new_print)
        await agent.reconnect()  # connected() records and reports the outcome
        await agent.flush(self.flush_timeout)

    def __repr__(self) -> str:
        return "KeyRotationHandler()"
