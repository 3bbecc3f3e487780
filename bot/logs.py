"""Logging set-up with a filter that redacts anything shaped like a secret or a token.

Two formats (LOG_FORMAT): `text`, one readable line per record with its structured fields
appended as key=value, and `json`, one JSON object per line (time, level, logger, message and
the fields passed with `extra=`). Either way the redaction covers every part of a record: the
message, each extra field, the traceback and stack_info.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Entra client secrets (e.g. "abC8Q~..."), Slack tokens, JWTs, bearer headers, signing secrets.
_PATTERNS = [
    # Entra client secret shape: 3 characters, a digit, "Q~", the rest, all from [A-Za-z0-9_~.-].
    # Not anchored with \b: a value may start with ~ . or -, where no word boundary is.
    re.compile(r"[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{20,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+"),  # Slack tokens
    re.compile(r"\bxapp-[A-Za-z0-9-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),  # JWT
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r'(?i)((?<![A-Za-z0-9_])"?(?:secretText|client_secret|signing_secret|value|password)"?\s*[:=]\s*"?)'
        r'[^",&\s}]{6,}'
    ),
]
MIN_REDACTED_LENGTH = 6
_extra_values: set[str] = set()


def redact_value(value: str) -> None:
    """Register a literal (e.g. the configured signing secret) to be redacted everywhere."""
    if len(value) >= MIN_REDACTED_LENGTH:  # shorter literals would blank out ordinary words
        _extra_values.add(value)


def redact(text: str) -> str:
    for literal in _extra_values:
        text = text.replace(literal, "[REDACTED]")
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.re.groups else "") + "[REDACTED]", text)
    return text


LOG_FORMATS = ("text", "json")
# What every LogRecord carries; anything else on a record came in through `extra=`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record was given with `extra=`."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


def _clean(value: Any) -> Any:
    """A field's value with the redaction applied to every string in it (JSON-ready)."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {redact(str(key)): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(item) for item in value]
    return redact(str(value))


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in fields(record).items():
            setattr(record, key, _clean(value))
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value ...`, the extra fields after the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extra = " ".join(f"{key}={_text(value)}" for key, value in fields(record).items())
        return redact(f"{line} {extra}" if extra else line)


def _text(value: Any) -> str:
    value = _clean(value)
    text = value if isinstance(value, str) else json.dumps(value)
    return json.dumps(text) if not text or any(c.isspace() or c in "\"=" for c in text) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the extra fields,
    and `exception` / `stack` when the record has them. Every field is redacted here too, so
    the output is clean even where the filter is not installed."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in fields(record).items():
            document.setdefault(key, _clean(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = redact(record.exc_text)
        if record.stack_info:
            document["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(document, ensure_ascii=False)


def configure(level: str = "INFO", stream: object = None, fmt: str = "text") -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries say little at INFO (Bolt would log whole request bodies of refused requests).
    quiet = (
        "azure",
        "urllib3",
        "msal",
        "httpx",
        "httpcore",
        "slack_sdk",
        "slack_bolt",
        "aiohttp.access",
        "alembic",
        "sqlalchemy",
        "asyncio",
    )
    for noisy in quiet:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
