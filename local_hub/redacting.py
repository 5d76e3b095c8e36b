"""Secrets never reach a log: a filter that redacts them from every record a handler emits.

Our own code never logs a key, a SAS signature or a connection string, but a library may: aiohttp
logged an over-long `Authorization` header, signature and all, in its parser error. So the hub's
and the CLI's log handlers carry `SecretRedactor`, which rewrites each record's message, its
formatted traceback and its stack before any formatter sees them:

- `sig=<...>` (SAS tokens, signed artifact URLs) and `SharedAccessKey=<...>` (connection
  strings), up to the next `&`, `;`, quote or space;
- `primaryKey` / `secondaryKey` (and `primary_key`, `symmetric_key`...) values in JSON or reprs;
- PEM private keys, and bare base64 strings of 32 or 64 bytes (the shape of every key the hub
  and the SDKs use).
"""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED", "SecretRedactor", "install_redactor", "redact"]

REDACTED = "<redacted>"

_PATTERNS = [
    (re.compile(r"(?i)(\bsig=)[^&;\s'\"]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)(SharedAccessKey=)[^;\s'\"]+"), rf"\1{REDACTED}"),
    (
        re.compile(
            r"(?i)((?:primary|secondary|symmetric)_?key['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9+/=_-]{8,}"
        ),
        rf"\1{REDACTED}",
    ),
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
            re.DOTALL,
        ),
        f"-----{REDACTED} PRIVATE KEY-----",
    ),
    # base64 of 32 bytes (44 characters with one '=') or 64 bytes (88 with '=='), standing alone
    (re.compile(r"(?<![A-Za-z0-9+/])(?:[A-Za-z0-9+/]{43}=|[A-Za-z0-9+/]{86}==)"), REDACTED),
]


def redact(text: str) -> str:
    """`text` with every secret it holds replaced by `<redacted>`."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class SecretRedactor(logging.Filter):
    """A handler filter that redacts secrets from the message, traceback and stack of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_redactor(logger: logging.Logger | None = None) -> None:
    """Add a `SecretRedactor` to each handler of `logger` (the root logger by default) that lacks
    one. Call it after configuring the handlers."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, SecretRedactor) for f in handler.filters):
            handler.addFilter(SecretRedactor())
