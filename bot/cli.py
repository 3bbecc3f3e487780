"""oauth-bot's command line: serve | demo | doctor | scan | migrate | audit export | policy check/explain."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from typing import Any

from bot import logs
from bot.config import load_settings
from bot.core.errors import OAuthBotError
from bot.engine.runner import BoundaryHook, no_hook
from bot.policy_cli import add_commands as add_policy_commands


def _serve(args: argparse.Namespace) -> int:
    return serve_command()


def serve_command(at_boundary: BoundaryHook = no_hook) -> int:
    """`oauth-bot serve` (tests' crash entry point passes a fault hook)."""
    import handlers  # the entry point wires the listener layer into the Bolt app
    from bot.slack.app import serve

    settings = load_settings(for_serve=True)  # every problem reported before anything is served
    logs.configure(settings.log_level, fmt=settings.log_format.lower())
    asyncio.run(serve(settings, handlers.register, at_boundary=at_boundary))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return int(run_demo(verbose=args.verbose, step=args.step))


def _doctor(args: argparse.Namespace) -> int:
    from bot.doctor import run_doctor

    settings = load_settings()
    logs.configure(settings.log_level, fmt=settings.log_format.lower())
    return run_doctor(settings)


def _migrate(args: argparse.Namespace) -> int:
    from bot.store.schema import HEAD, upgrade

    settings = load_settings()
    logs.configure(settings.log_level, fmt=settings.log_format.lower())
    revision = upgrade(settings.database_url)
    print(f"the database schema is at revision {revision}" + (" (head)" if revision == HEAD else ""))
    return 0


def _scan(args: argparse.Namespace) -> int:
    from bot.runtime import build

    settings = load_settings(for_serve=True)
    logs.configure(settings.log_level, fmt=settings.log_format.lower())
    services = build(settings)
    try:
        report = services.lifecycle.scan()
        retired = services.lifecycle.retire_due()
    finally:
        services.close()
    print(
        f"scanned {report.apps} apps and {report.secrets} client secrets; sent {len(report.reminders)} "
        f"reminder(s); removed {len(retired)} old secret(s) whose grace period ended"
    )
    return 0


def _audit_export(args: argparse.Namespace) -> int:
    from bot.store import Store

    settings = load_settings()
    store = Store.from_url(settings.database_url)
    events = store.audit_events()
    rows: list[dict[str, Any]] = [
        {
            "id": e.id,
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "request_id": e.request_id,
            "client_id": e.client_id,
            "detail": e.detail,
        }
        for e in events
    ]
    out = open(args.output, "w", newline="") if args.output != "-" else sys.stdout  # noqa: SIM115
    try:
        if args.format == "jsonl":
            for row in rows:
                out.write(json.dumps(row) + "\n")
        else:
            writer = csv.DictWriter(
                out, fieldnames=["id", "at", "actor", "action", "request_id", "client_id", "detail"]
            )
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "detail": json.dumps(row["detail"])})
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _policy(args: argparse.Namespace) -> int:
    from bot.policy_cli import run

    return run(args)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="oauth-bot", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve", help="run the bot (Socket Mode if SLACK_APP_TOKEN is set, else HTTP on $PORT)"
    )
    demo = commands.add_parser("demo", help="play the whole story locally against built-in fakes")
    demo.add_argument("--verbose", action="store_true", help="also print the bot's log")
    demo.add_argument("--step", action="store_true", help="pause between the acts (at a terminal)")
    commands.add_parser(
        "doctor", help="check the configuration, Slack, Entra, Graph, Key Vault and the database"
    )
    commands.add_parser("scan", help="run the expiry scan (and grace-period removals) once, now")
    commands.add_parser("migrate", help="create or upgrade the database schema (before starting replicas)")
    add_policy_commands(commands)
    audit = commands.add_parser("audit", help="the audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    export = audit_commands.add_parser("export", help="write the audit log for a SIEM")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--output", default="-", help="file to write (default: standard output)")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler = {
        "serve": _serve,
        "demo": _demo,
        "doctor": _doctor,
        "scan": _scan,
        "migrate": _migrate,
        "audit": _audit_export,
        "policy": _policy,
    }[args.command]
    try:
        return handler(args)
    except OAuthBotError as error:
        print(f"oauth-bot: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
