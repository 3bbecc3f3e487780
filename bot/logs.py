"""Logging set-up with a filter that redacts anything shaped like a secret or a token."""

from __future__ import annotations

import logging
import re
import sys

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


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
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


def configure(level: str = "INFO", stream: object = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries say little at INFO (Bolt would log whole request bodies of refused requests).
    quiet = ("azure", "urllib3", "msal", "httpx", "httpcore", "slack_sdk", "slack_bolt", "aiohttp.access")
    for noisy in quiet:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
