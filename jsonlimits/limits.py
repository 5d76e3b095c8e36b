"""How much JSON a party accepts from the other side of the wire."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True)
class Limits:
    """The bounds a JSON document must stay within.

    Attributes:
        max_bytes: the largest document, in UTF-8 bytes.
        max_depth: how deeply arrays and objects may nest, both counted (`[]` and `{}` are 1).
        max_number_chars: the longest number literal, in characters; far below Python's
            4,300-digit integer conversion limit.
    """

    max_bytes: int = 1024 * 1024
    max_depth: int = 64
    max_number_chars: int = 100


DEFAULT_LIMITS = Limits()
