"""`python -m tests.crash.halting`: `oauth-bot serve` with the crash tests' fault hook injected.

With OAUTH_BOT_TEST_HALT_AT=<step>:<started|finished>, the worker thread that reaches that step
boundary logs "halting at …" and stops dead there (the test then SIGKILLs the process). The
production code reads no such variable: the hook is handed to bot.runtime.build from here.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

from bot.cli import serve_command

HALT = "OAUTH_BOT_TEST_HALT_AT"
log = logging.getLogger("tests.crash.halting")


def halt_at(boundary: str | None) -> Callable[[str], None]:
    def hook(reached: str) -> None:
        if reached == boundary:
            log.warning("halting at %s for a crash test", reached)
            threading.Event().wait()

    return hook


if __name__ == "__main__":
    sys.exit(serve_command(at_boundary=halt_at(os.environ.get(HALT))))
