"""Log records as the code made them, before any handler, filter or formatter sees them.

bot/logs.py's RedactingFilter sits on the stderr handler and rewrites each record in place
(`record.msg`, `record.args`, `record.exc_text`), so any handler that runs after it, and
anything that reads the bot's stderr, sees only what the filter left. A canary search there
proves nothing about the code: a secret that reaches a log call is scrubbed and the search
passes. These captures hook logging's record factory instead, which runs when a logger
creates a record, before any handler or filter exists for it. What they hold is what the
code asked to log, whatever shape the value has and whatever the filter would do with it.

In-process: `RawRecords().install()`. For the bot as a real process:
`python -m tests.rawlog RAW_FILE bot.cli serve` runs the module (or a script, for a path
ending in .py) as `python -m bot.cli serve` would, with every record also written to
RAW_FILE, one write per record (nothing is lost to a SIGKILL).
"""

from __future__ import annotations

import logging
import os
import runpy
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

_exception_formatter = logging.Formatter()


def render(record: logging.LogRecord) -> str:
    """The record's level, logger, message with its arguments, traceback and stack."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: keep both halves, as logging's error report does
        message = f"{record.msg!r} % {record.args!r}"
    parts = [f"{record.levelname} {record.name} {message}"]
    if record.exc_info:
        parts.append(_exception_formatter.formatException(record.exc_info))
    if record.stack_info:
        parts.append(str(record.stack_info))
    return "\n".join(parts) + "\n"


def install(sink: Callable[[str], None]) -> Callable[[], None]:
    """Send every record created from now on to `sink` (rendered); returns the uninstaller."""
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        sink(render(record))
        return record

    logging.setLogRecordFactory(factory)
    return lambda: logging.setLogRecordFactory(previous)


class RawRecords:
    """Every log record made while installed, rendered raw (in memory)."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._lock = threading.Lock()
        self._uninstall: Callable[[], None] | None = None

    def _add(self, text: str) -> None:
        with self._lock:
            self._parts.append(text)

    def install(self) -> RawRecords:
        self._uninstall = install(self._add)
        return self

    def uninstall(self) -> None:
        if self._uninstall is not None:
            self._uninstall()
            self._uninstall = None

    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)


def to_file(path: Path) -> Callable[[], None]:
    """Append every record to `path`, one unbuffered write each."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(text: str) -> None:
        os.write(fd, text.encode("utf-8", "backslashreplace"))

    return install(write)


def main() -> None:
    raw_file, target, *arguments = sys.argv[1:]
    to_file(Path(raw_file))
    sys.argv = [target, *arguments]
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
