"""The crash matrix's canary search reads what the bot process logged before redaction."""

from __future__ import annotations

import os
from pathlib import Path

from tests.crash.conftest import BotProcess

VALUE = "Xyz7Q~" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7"  # an Entra client secret's shape

SCRIPT = """
import logging, sys
from bot import logs

logs.configure("DEBUG")  # the production set-up: the redacting stderr handler
logging.getLogger("bot.workflow").info("addPassword answered %s", {"secretText": sys.argv[1]})
"""


def test_a_value_the_process_logs_is_found_though_its_stderr_redacts_it(tmp_path: Path) -> None:
    """A secret a bot process logs through the production log set-up is redacted from its
    stderr (a search there would pass) but is in BotProcess.raw_output(), which the crash
    matrix searches for every value in the vault."""
    script = tmp_path / "log_a_secret.py"
    script.write_text(SCRIPT)
    process = BotProcess(dict(os.environ), tmp_path, "self-test")
    assert process.run(str(script), VALUE) == 0, process.output()
    assert "addPassword answered" in process.output() and "[REDACTED]" in process.output()
    assert VALUE not in process.output()
    assert VALUE in process.raw_output()
