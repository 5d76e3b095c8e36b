"""`Twins`: reading and patching device twins (tags and desired properties)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Mapping
from typing import Any

from twin_manager import errors, models, raw, schemes
from twin_manager._sdk import Sdk
from twin_manager.sentinels import NOT_GIVEN, NotGiven

__all__ = ["Twins", "twin_patch"]


def _etag(if_match: str | NotGiven) -> str | None:
    return None if isinstance(if_match, NotGiven) else if_match


def twin_patch(
    tags: Mapping[str, Any] | None, desired: Mapping[str, Any] | None
) -> raw.RawTwinPatch:
    """The body of a twin update: tags and desired properties, each only when given."""
    patch: raw.RawTwinPatch = {}
    if tags is not None:
        patch["tags"] = dict(tags)
    if desired is not None:
        patch["properties"] = {"desired": dict(desired)}
    return patch


class Twins:
    """Device twins of one hub (`fleet.twins`).

    Every write takes `if_match`: the etag the twin must still have (`twin.etag`), for
    optimistic concurrency; not given means "whatever it is now". A stale etag raises
    PreconditionFailed: read the twin again, then retry.
    """

    def __init__(self, sdk: Sdk, scheme: schemes.FleetScheme | None = None) -> None:
        self._sdk = sdk
        self._scheme = scheme

    def get(self, device_id: str) -> models.Twin:
        """Raises DeviceNotFound when there is no such device."""
        return models.Twin.from_raw(self._sdk.get_twin(device_id))

    def update(
        self,
        device_id: str,
        *,
        desired: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        if_match: str | NotGiven = NOT_GIVEN,
    ) -> models.Twin:
        """Merge-patch desired properties and/or tags (`None` values delete properties).

        Raises:
            InvalidTags: the fleet's scheme does not allow the tags (nothing was sent).
            PreconditionFailed: the twin changed since `if_match` was read.
        """
        if tags is not None and self._scheme is not None:
            self._scheme.check_tags(tags)
        patch = twin_patch(tags, desired)
        return models.Twin.from_raw(self._sdk.update_twin(device_id, patch, _etag(if_match)))

    def update_desired(
        self, device_id: str, patch: Mapping[str, Any], *, if_match: str | NotGiven = NOT_GIVEN
    ) -> models.Twin:
        """Merge-patch desired properties; the hub pushes the patch to the device."""
        return self.update(device_id, desired=patch, if_match=if_match)

    def update_tags(
        self, device_id: str, patch: Mapping[str, Any], *, if_match: str | NotGiven = NOT_GIVEN
    ) -> models.Twin:
        """Merge-patch tags (seen by the back end only, never by the device)."""
        return self.update(device_id, tags=patch, if_match=if_match)

    def replace(
        self,
        device_id: str,
        *,
        desired: Mapping[str, Any],
        tags: Mapping[str, Any],
        if_match: str | NotGiven = NOT_GIVEN,
    ) -> models.Twin:
        """Replace desired properties and tags whole (what is not given is removed).

        Raises:
            InvalidTags: the fleet's scheme does not allow the tags (nothing was sent).
        """
        if self._scheme is not None:
            self._scheme.check_tags(tags, whole=True)
        twin = twin_patch(tags, desired)
        return models.Twin.from_raw(self._sdk.replace_twin(device_id, twin, _etag(if_match)))

    def update_desired_many(
        self, device_ids: Iterable[str], patch: Mapping[str, Any], *, max_workers: int = 8
    ) -> dict[str, models.Twin | errors.HubError]:
        """Apply one desired patch to many devices concurrently; each gets its twin or error."""
        ids = list(device_ids)

        def one(device_id: str) -> models.Twin | errors.HubError:
            try:
                return self.update_desired(device_id, patch)
            except errors.HubError as exc:
                return exc

        with concurrent.futures.ThreadPoolExecutor(max_workers) as pool:
            return dict(zip(ids, pool.map(one, ids), strict=True))
