"""The logging filter redacts secret-shaped values from every record, tracebacks included."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from bot import cli, logs

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


# Entra client secrets: 3 characters, a digit, "Q~", then 31 more, all from [A-Za-z0-9_~.-];
# these start with characters that are not "word" characters, which `\b` cannot anchor on.
AWKWARD_SECRETS = [
    "~Ab8Q~" + "Zz1xYw2vUt3sRq4pOn5mLk6jIh7gFe8",
    ".-_7Q~" + "a~b.c-d_e" * 3 + "f~g.h",
    "-~~0Q~" + "-" * 31,
    "a.~9Q~" + "~" * 31,
]


def _secret_in_every_part(secret: str) -> str:
    """Log `secret` in a message, in an argument, in an exception and in stack_info."""
    log = logging.getLogger("bot.test")

    def emit() -> None:
        log.info(f"inline {secret}, quoted '{secret}', glued key={secret}")
        log.info("in the args: %s and %r", secret, {"note": secret})
        try:
            raise RuntimeError(f"HTTP 400 body: [{secret}]")
        except RuntimeError:
            log.exception("in exc_info")
        # A record as a QueueListener or a SocketHandler's receiver hands it on, stack included.
        stack = f'Stack (most recent call last):\n  File "x.py", line 1\n    token = "{secret}"'
        record = logging.makeLogRecord(
            {
                "name": "bot.test",
                "levelno": logging.WARNING,
                "levelname": "WARNING",
                "msg": "in stack_info",
                "stack_info": stack,
            }
        )
        log.handle(record)

    return _captured(emit)


@pytest.mark.parametrize("secret", AWKWARD_SECRETS)
def test_entra_secrets_that_start_with_punctuation_are_redacted_everywhere(secret: str) -> None:
    """Client secret values starting with ~, . or - are redacted whole from the message, the
    arguments, the traceback and stack_info (no fragment of 8 or more characters is left)."""
    text = _secret_in_every_part(secret)
    assert "in stack_info" in text and "Stack (most recent call last)" in text
    assert "RuntimeError" in text
    for start in range(len(secret) - 8):
        assert secret[start : start + 8] not in text, (secret[start : start + 8], text)
    assert text.count("[REDACTED]") >= 7


def test_stack_info_is_redacted() -> None:
    """stack_info=True output (the source lines of the call stack) goes through the filter too."""
    log = logging.getLogger("bot.test")
    text = _captured(lambda: log.warning("where %s", "here", stack_info=True))  # xoxb-1-in-source-line
    assert "Stack (most recent call last)" in text
    assert "xoxb-1-in-source-line" not in text and "[REDACTED]" in text


def _json_lines(emit: object) -> list[dict[str, object]]:
    stream = io.StringIO()
    logs.configure("DEBUG", stream=stream, fmt="json")
    try:
        emit()  # type: ignore[operator]
    finally:
        logging.getLogger().handlers.clear()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_format_is_one_object_per_line_with_the_extra_fields_redacted() -> None:
    """LOG_FORMAT=json: each record is one JSON object (time, level, logger, message and the
    fields given with `extra=`); a secret-shaped value in the message, in an extra field (plain
    or nested), in a traceback or in stack_info is redacted, and ordinary fields are kept."""
    log = logging.getLogger("bot.test")

    def emit() -> None:
        log.info("step %s done", "vault", extra={"request_id": 7, "kind": "new_app", "note": ENTRA_SECRET})
        log.warning("nested", extra={"detail": {"token": SLACK_TOKEN, "ids": [JWT, 3]}})
        try:
            raise RuntimeError(f"body secretText={ENTRA_SECRET}")
        except RuntimeError:
            log.exception("failed with %s", ENTRA_SECRET, stack_info=True)

    lines = _json_lines(emit)
    assert len(lines) == 3
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
        assert line["logger"] == "bot.test"
    first, nested, failed = lines
    assert first["message"] == "step vault done" and first["level"] == "INFO"
    assert first["request_id"] == 7 and first["kind"] == "new_app"
    assert first["note"] == "[REDACTED]"
    assert nested["detail"] == {"token": "[REDACTED]", "ids": ["[REDACTED]", 3]}
    assert "RuntimeError" in str(failed["exception"]) and "Stack (most recent" in str(failed["stack"])
    text = json.dumps(lines)
    for leaked in (ENTRA_SECRET, SLACK_TOKEN, JWT):
        assert leaked not in text


def test_text_format_appends_the_extra_fields_redacted() -> None:
    """LOG_FORMAT=text (the default): one line per record with its extra fields as key=value,
    a secret-shaped extra value redacted."""
    text = _captured(
        lambda: logging.getLogger("bot.test").info(
            "request 3: approved", extra={"request_id": 3, "actor": "U0ADMIN1", "note": ENTRA_SECRET}
        )
    )
    assert "request 3: approved request_id=3 actor=U0ADMIN1 note=[REDACTED]" in text
    assert ENTRA_SECRET not in text


def test_migrate_says_only_its_result_at_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`oauth-bot migrate` at LOG_LEVEL=INFO prints the schema's revision and nothing from
    Alembic (its "Context impl", "Running upgrade" lines are library chatter at INFO)."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'bot.db'}")
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    try:
        assert cli.main(["migrate"]) == 0
    finally:
        logging.getLogger().handlers.clear()
    out, err = capsys.readouterr()
    assert "the database schema is at revision" in out
    assert err == ""
