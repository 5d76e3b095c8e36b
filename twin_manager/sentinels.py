"""`NOT_GIVEN`: "argument not given", distinct from None (JSON null deletes a twin property)."""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["NOT_GIVEN", "NotGiven"]


class NotGiven(enum.Enum):
    NOT_GIVEN = "NOT_GIVEN"

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven.NOT_GIVEN
