"""``platform-keys``: create, list and revoke API keys, and read usage, in the platform database.

::

    platform-keys create --name alice --scope agent:travel [--scope llm ...] [--rpm 60]
                         [--token-budget 200000] [--budget-window 1d] [--expires-in 30d]
    platform-keys list
    platform-keys revoke alice
    platform-keys usage [alice] [--days 7]

The database is ``DATABASE_URL`` (as for the apps; ``--database-url`` overrides it). ``create`` prints the
new secret once, alone on the last line of stdout (``| tail -n1`` takes it); no command ever shows a
secret again. Diagnostics go to stderr through :mod:`logging`; tables and the secret are the output.
Exit status: 0 done, 1 failed (no such key, a name in use, the database unreachable), 2 bad arguments.
"""

import argparse
import asyncio
import logging
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from identity.errors import KeyNameTaken
from identity.keys import APIKey
from identity.scopes import parse_scope
from identity.service import IdentityService
from identity.usage import utc_day
from platform_core.errors import describe_error
from platform_core.sql import DatabaseUnavailable, DatabaseURL, default_database_url

logger = logging.getLogger("platform-keys")

_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


class CommandFailed(Exception):
    """A command that cannot be done (exit status 1); its message is logged."""


def parse_duration(text: str) -> float:
    """Seconds of ``30d``, ``12h``, ``90m``, ``45s`` or ``2w``; raises ``argparse.ArgumentTypeError``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}; use e.g. 45s, 90m, 12h, 1d, 30d or 2w")
    return float(match[1]) * _UNITS[match[2]]


def _scope(text: str) -> str:
    try:
        return parse_scope(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def _duration_text(seconds: float) -> str:
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _when(moment: float | None) -> str:
    return "-" if moment is None else datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(header), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in cells
    )


def _budget(key: APIKey) -> str:
    if key.token_budget is None:
        return "-"
    return f"{key.token_budget}/{_duration_text(key.budget_window_s or 86_400)}"


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


async def _create(identity: IdentityService, args: argparse.Namespace) -> None:
    try:
        key, token = await identity.keys.create(
            args.name,
            args.scope,
            expires_in_s=args.expires_in,
            rpm=args.rpm,
            token_budget=args.token_budget,
            budget_window_s=args.budget_window,
        )
    except (KeyNameTaken, ValueError) as exc:
        raise CommandFailed(str(exc)) from exc
    logger.warning("this is the only time the secret is shown: store it now")
    _out(
        _table(
            ["name", "key id", "scopes", "rpm", "tokens", "expires"],
            [
                [
                    key.name,
                    key.key_id,
                    " ".join(key.scopes),
                    key.rpm or "-",
                    _budget(key),
                    _when(key.expires_at),
                ]
            ],
        )
        + token
        + "\n"
    )


async def _list(identity: IdentityService, _: argparse.Namespace) -> None:
    now = time.time()
    keys = await identity.keys.list()
    rows = [
        [
            key.name,
            key.key_id,
            key.status(now),
            " ".join(key.scopes),
            key.rpm or "-",
            _budget(key),
            _when(key.created_at),
            _when(key.expires_at),
        ]
        for key in keys
    ]
    _out(_table(["name", "key id", "status", "scopes", "rpm", "tokens", "created", "expires"], rows))


async def _revoke(identity: IdentityService, args: argparse.Namespace) -> None:
    before = await identity.keys.by_name(args.name)
    if before is None:
        raise CommandFailed(f"no key named {args.name!r}")
    key = await identity.keys.revoke(args.name)
    assert key is not None
    if before.revoked_at is not None:
        logger.warning("%s was revoked already, at %s", key.name, _when(key.revoked_at))
    _out(f"revoked {key.name} ({key.key_id}); every replica refuses it within 5 s\n")


async def _usage(identity: IdentityService, args: argparse.Namespace) -> None:
    principal_id = None
    if args.name is not None:
        key = await identity.keys.by_name(args.name)
        if key is None:
            raise CommandFailed(f"no key named {args.name!r}")
        principal_id = key.principal_id
    since = utc_day(time.time() - timedelta(days=args.days - 1).total_seconds()) if args.days else None
    rows = await identity.usage.read(principal_id, since_day=since)
    _out(
        _table(
            ["principal", "day", "runs", "prompt tokens", "completion tokens", "tool calls"],
            [
                [
                    row.principal_name,
                    row.day,
                    row.runs,
                    row.prompt_tokens,
                    row.completion_tokens,
                    row.tool_calls,
                ]
                for row in rows
            ],
        )
    )


_COMMANDS = {"create": _create, "list": _list, "revoke": _revoke, "usage": _usage}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``platform-keys``."""
    parser = argparse.ArgumentParser(
        prog="platform-keys", description="Manage the platform's API keys and read usage (DATABASE_URL)."
    )
    parser.add_argument("--database-url", help="the platform database (default: DATABASE_URL, as the apps)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (to stderr)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = commands.add_parser("create", help="create a key; prints its secret once, on the last line")
    create.add_argument("--name", required=True, help="the key's unique name (e.g. a user or a service)")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        type=_scope,
        help="agent:<name>, agent:*, llm, mcp:<server>, mcp:* or admin (repeat for several)",
    )
    create.add_argument("--rpm", type=_positive_int, help="requests per minute (default: unlimited)")
    create.add_argument(
        "--token-budget", type=_positive_int, help="LLM tokens per window (default: unlimited)"
    )
    create.add_argument(
        "--budget-window", type=parse_duration, help="the token budget's window (default: 1d)"
    )
    create.add_argument("--expires-in", type=parse_duration, help="the key expires after this (e.g. 30d)")

    commands.add_parser("list", help="list keys (never their secrets)")
    revoke = commands.add_parser("revoke", help="revoke a key (every replica refuses it within 5 s)")
    revoke.add_argument("name")
    usage = commands.add_parser("usage", help="usage per principal and day")
    usage.add_argument("name", nargs="?", help="only this key's principal")
    usage.add_argument("--days", type=_positive_int, help="only the last N days (UTC), today included")
    return parser


async def _run(args: argparse.Namespace) -> None:
    async with IdentityService(args.database_url or default_database_url(), pool_size=1) as identity:
        await _COMMANDS[args.command](identity, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``platform-keys`` with ``argv`` (default: the command line); returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="platform-keys: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "create" and args.budget_window is not None and args.token_budget is None:
        logger.error("--budget-window needs --token-budget")
        return 2
    try:
        DatabaseURL.parse(args.database_url or default_database_url())
        asyncio.run(_run(args))
    except CommandFailed as exc:
        logger.error("%s", exc)
        return 1
    except (DatabaseUnavailable, ValueError) as exc:
        logger.error("%s", describe_error(exc) if not isinstance(exc, DatabaseUnavailable) else exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
