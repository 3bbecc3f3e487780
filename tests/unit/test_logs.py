"""The logging filter redacts secret-shaped values from every record, tracebacks included."""

from __future__ import annotations

import io
import logging

from bot import logs

ENTRA_SECRET = "Abc8Q~Zz1xYw2vUt3sRq4pOn5mLk6jIh7gFe8dC"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoIn0.c2lnbmF0dXJlLXBhcnQ"
SLACK_TOKEN = "xoxb-1234567890-abcdefghijkl"


def _captured(emit: object) -> str:
    stream = io.StringIO()
    logs.configure("DEBUG", stream=stream)
    try:
        emit()  # type: ignore[operator]
    finally:
        logging.getLogger().handlers.clear()
    return stream.getvalue()


def test_secret_shaped_values_are_redacted_from_messages_and_arguments() -> None:
    """An Entra client secret, a JWT, a Slack token and a bearer header never reach the output."""
    log = logging.getLogger("bot.test")
    text = _captured(
        lambda: log.info(
            "body %s token %s slack %s header %s",
            {"secretText": ENTRA_SECRET},
            JWT,
            SLACK_TOKEN,
            "Authorization: Bearer abcdefghijklmnop",
        )
    )
    for leaked in (ENTRA_SECRET, JWT, SLACK_TOKEN, "abcdefghijklmnop"):
        assert leaked not in text
    assert text.count("[REDACTED]") >= 4


def test_exceptions_carrying_http_bodies_are_scrubbed() -> None:
    """A traceback whose exception message holds a response body is redacted too."""
    log = logging.getLogger("bot.test")

    def emit() -> None:
        try:
            raise RuntimeError(f'HTTP 200 {{"keyId": "k", "secretText": "{ENTRA_SECRET}"}}')
        except RuntimeError:
            log.exception("call failed")

    text = _captured(emit)
    assert "RuntimeError" in text and "Traceback" in text
    assert ENTRA_SECRET not in text


def test_registered_literals_are_redacted() -> None:
    """The configured signing secret (any shape) is redacted once registered."""
    logs.redact_value("plain-signing-secret-value")
    text = _captured(lambda: logging.getLogger("x").warning("sig plain-signing-secret-value"))
    assert "plain-signing-secret-value" not in text and "[REDACTED]" in text
