"""The layers' one-way doors, checked on the source: what each folder of bot/ may import, that
the fakes stay out of the product, and that no module grows past what a newcomer can read."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WIRE_LIBRARIES = (
    "slack_sdk",
    "slack_bolt",
    "httpx",
    "msal",
    "sqlalchemy",
    "alembic",
    "azure",
    "aiohttp",
    "requests",
)
MAX_LINES = 450


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _offending(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(folder)
        for name in sorted(_imports(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        (
            "bot/core",
            (
                *WIRE_LIBRARIES,
                "bot.flows",
                "bot.engine",
                "bot.azure",
                "bot.store",
                "bot.slack",
                "handlers",
                "fakes",
            ),
        ),
        (
            "bot/flows",
            (*WIRE_LIBRARIES, "bot.engine", "bot.azure", "bot.store", "bot.slack", "handlers", "fakes"),
        ),
        (
            "bot/engine",
            (
                "slack_sdk",
                "slack_bolt",
                "httpx",
                "msal",
                "bot.flows",
                "bot.azure",
                "bot.slack",
                "handlers",
                "fakes",
            ),
        ),
        (
            "bot/azure",
            (
                "slack_sdk",
                "slack_bolt",
                "sqlalchemy",
                "bot.flows",
                "bot.engine",
                "bot.store",
                "bot.slack",
                "handlers",
                "fakes",
            ),
        ),
        (
            "bot/store",
            (
                "slack_sdk",
                "slack_bolt",
                "httpx",
                "msal",
                "bot.flows",
                "bot.engine",
                "bot.azure",
                "bot.slack",
                "handlers",
                "fakes",
            ),
        ),
        ("bot/slack", ("bot.store", "bot.azure", "bot.engine.worker", "handlers", "fakes")),
        ("handlers", ("bot.store", "bot.azure", "sqlalchemy", "httpx", "fakes")),
    ],
)
def test_each_layer_imports_only_what_its_door_allows(folder: str, forbidden: tuple[str, ...]) -> None:
    """Dependencies point one way: handlers → bot.slack → bot.flows → bot.core; flows reach the
    database, Azure and Slack only through bot.core.ports, so core and flows import no database,
    HTTP, MSAL or Slack library."""
    assert _offending(folder, forbidden) == []


def test_only_the_demo_uses_the_fakes_and_only_the_entry_point_wires_the_handlers() -> None:
    """bot/ imports the loopback fakes only in `oauth-bot demo`, and the listener layer only in
    the command line that wires it into the Bolt app."""
    fakes = [p for p in _modules("bot") if any(n.split(".")[0] == "fakes" for n in _imports(p))]
    handlers = [p for p in _modules("bot") if any(n.split(".")[0] == "handlers" for n in _imports(p))]
    assert [p.relative_to(ROOT).as_posix() for p in fakes] == ["bot/demo.py"]
    assert [p.relative_to(ROOT).as_posix() for p in handlers] == ["bot/cli.py"]


def test_only_bot_metrics_knows_prometheus_client() -> None:
    """Metrics go through bot.core.ports.Metrics: prometheus_client is imported by bot/metrics.py
    alone, never by core, flows, the engine, Azure, the store, Slack or the handlers."""
    users = [
        p.relative_to(ROOT).as_posix()
        for folder in ("bot", "handlers")
        for p in _modules(folder)
        if any(n.split(".")[0] == "prometheus_client" for n in _imports(p))
    ]
    assert users == ["bot/metrics.py"]


def test_no_module_of_bot_or_handlers_is_longer_than_a_newcomer_can_read() -> None:
    """No module of bot/ or handlers/ is over 450 lines."""
    long = {
        str(p.relative_to(ROOT)): n
        for folder in ("bot", "handlers")
        for p in _modules(folder)
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


@pytest.mark.slow
def test_the_wheel_ships_the_fakes_beside_bot_not_inside_it(tmp_path: Path) -> None:
    """The built wheel has bot/, handlers/ and fakes/ (for `oauth-bot demo`), and nothing of the
    fakes, the Slack driver or test helpers under bot/."""
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("oauth_bot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if "/" in name and ".dist-info" not in name}
    assert tops == {"bot", "handlers", "fakes"}
    assert not [
        n for n in names if n.startswith("bot/") and ("fakes" in n or "harness" in n or "driver" in n)
    ]
    assert "bot/store/migrations/versions/0003_request_columns.py" in names
