"""`genesis`: the service's one command (migrate, api, relay, dev, token, agent, outbox, topic)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

import asyncpg

from genesis import db, logs
from genesis.errors import DomainError
from genesis.migrate import MigrationError, migrate, require_migrated
from genesis.outbox import prune_sent
from genesis.settings import Settings, SettingsError

log = logging.getLogger("genesis")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        logs.configure(settings.log_level)
        command: Callable[[argparse.Namespace, Settings], int] = args.func
        return command(args, settings)
    except (SettingsError, MigrationError, DomainError) as exc:
        print(f"genesis: {exc}", file=sys.stderr)
        return 2
    except db.DATABASE_GONE as exc:
        print(f"genesis: the database at DATABASE_URL does not answer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except db.DATABASE_REFUSED as exc:  # no such database or role, a wrong password
        print(f"genesis: the database at DATABASE_URL refused: {_said(exc)}", file=sys.stderr)
        return 1
    except asyncpg.PostgresError as exc:  # e.g. a startup parameter it does not know, a statement timeout
        print(f"genesis: the database answered an error: {_said(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _said(exc: asyncpg.PostgresError) -> str:
    # Its message alone: str() adds the server's DETAIL and HINT on lines of their own.
    return f"{exc.sqlstate} {type(exc).__name__}: {exc.args[0] if exc.args else exc}"


class _Parser(argparse.ArgumentParser):
    """An argument error is one line and exit status 2, as a malformed setting is (the usage is under --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="genesis", description="Genesis command service")
    parser.set_defaults(func=_by_service_type)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    sub.add_parser("migrate", help="apply migrations and (re)install the SQL functions").set_defaults(func=_migrate)
    sub.add_parser("api", help="serve the HTTP API on API_HOST:API_PORT").set_defaults(func=_api)
    sub.add_parser("relay", help="run one message relay replica").set_defaults(func=_relay)
    dev_help = "local PostgreSQL and broker, migrate, API, a relay and the development agent"
    sub.add_parser("dev", help=dev_help).set_defaults(func=_dev)
    token = sub.add_parser("token", help="print a development JWT signed with JWT_SECRET")
    token.add_argument("--user", required=True, type=_nonempty_text)
    token.add_argument("--ttl", type=_ttl, default=3600, help="seconds (default 3600)")
    token.add_argument("--scope", default="", type=_text, help="space-separated scopes, e.g. 'genesis:agent'")
    token.set_defaults(func=_token)
    agent = sub.add_parser("agent", help="run an agent: --dev, the development stand-in")
    agent.add_argument("--dev", action="store_true", required=True, help="the development agent (the only one)")
    agent.set_defaults(func=_agent)

    outbox = sub.add_parser("outbox", help="operate the event outbox").add_subparsers(
        title="outbox commands", metavar="ACTION", required=True
    )
    outbox.add_parser("stats", help="backlog, blocked, failed, oldest pending age").set_defaults(func=_outbox_stats)
    show = outbox.add_parser("show", help="one event's outbox row, with where it landed on Kafka")
    show.add_argument("--event-id", required=True, type=uuid.UUID, metavar="ID")
    show.set_defaults(func=_outbox_show)
    requeue = outbox.add_parser("requeue", help="FAILED rows back to PENDING")
    which = requeue.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=_row_id)
    which.add_argument("--all-failed", action="store_true")
    requeue.set_defaults(func=_outbox_requeue)
    discard = outbox.add_parser("discard", help="give up on one row, with a reason")
    discard.add_argument("--id", type=_row_id, required=True)
    discard.add_argument("--reason", type=_text, required=True)
    discard.set_defaults(func=_outbox_discard)
    prune = outbox.add_parser("prune", help="delete SENT rows older than DURATION (e.g. 7d, 12h, 30m)")
    prune.add_argument("--older-than", type=parse_duration, required=True, metavar="DURATION")
    prune.set_defaults(func=_outbox_prune)

    topic = sub.add_parser("topic", help="read KAFKA_TOPIC").add_subparsers(
        title="topic commands", metavar="ACTION", required=True
    )
    tail = topic.add_parser("tail", help="a line per record: partition, offset, key, event_type, ce_id, trace id")
    tail.add_argument("--session", type=uuid.UUID, metavar="ID", help="only this session's records")
    tail.add_argument("--from-beginning", action="store_true", help="from each partition's start, not its end")
    tail.set_defaults(func=_topic_tail)
    return parser


MAX_DURATION_DAYS = 36_500  # a century: far beyond any retention, far within PostgreSQL's interval
MAX_TTL = 366 * 86_400
MAX_ROW_ID = 2**63 - 1  # event_outbox.id is a bigint


def parse_duration(text: str) -> float:
    """'90', '90s', '30m', '12h', '7d' → seconds (at most MAX_DURATION_DAYS)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}; use e.g. 45s, 30m, 12h, 7d")
    seconds = float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    if seconds > MAX_DURATION_DAYS * 86400:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}; at most {MAX_DURATION_DAYS}d")
    return seconds


def _bounded_int(text: str, what: str, low: int, high: int) -> int:
    # ASCII digits only, as the API's `?after=`: int() would also take "1_000", " 7" and other scripts' digits.
    value = int(text) if re.fullmatch(r"[0-9]{1,19}", text) else low - 1  # refused below with the same words
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"invalid {what} {text[:40]!r}; expected an integer from {low} to {high}")
    return value


def _row_id(text: str) -> int:
    return _bounded_int(text, "row id", 1, MAX_ROW_ID)


def _ttl(text: str) -> int:
    return _bounded_int(text, "number of seconds", 1, MAX_TTL)


def _text(text: str) -> str:
    """Text the database (and a JWT) can hold: bytes that are not UTF-8 reach argv as lone surrogates."""
    if not db.storable_text(text):
        raise argparse.ArgumentTypeError(f"invalid text {text[:40]!r}; not valid UTF-8")
    return text


def _nonempty_text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return _text(text)


def _by_service_type(args: argparse.Namespace, settings: Settings) -> int:
    service = os.environ.get("SERVICE_TYPE", "")
    if service == "api":
        return _api(args, settings)
    if service == "message-relay":
        return _relay(args, settings)
    raise SettingsError(f"SERVICE_TYPE must be 'api' or 'message-relay' (got {service!r}); or name a command")


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("database_url")
    asyncio.run(
        migrate(settings.database_url, kafka_topic=settings.kafka_topic, cloudevents_source=settings.cloudevents_source)
    )
    return 0


def _api(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("database_url")
    settings.require_jwt_key()
    settings.require_stream_token_key()
    from genesis.cli.runner import api_sockets, run_services, serve_api

    sockets = api_sockets(settings)
    return run_services([lambda stop: serve_api(settings, stop, sockets)])


def _relay(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("database_url", "kafka_bootstrap_servers")
    settings.require_relay_lease()
    from genesis.cli.runner import relay_sockets, run_services, serve_relay

    sockets = relay_sockets(settings)
    return run_services([lambda stop: serve_relay(settings, stop, sockets)])


def _dev(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_relay_lease()
    from genesis.cli.devmode import run_dev

    return run_dev(settings)


def _agent(args: argparse.Namespace, settings: Settings) -> int:
    from genesis.cli.runner import check_dev_agent, run_services, serve_dev_agent

    check_dev_agent(settings)
    return run_services([lambda stop: serve_dev_agent(settings, stop)])


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from genesis.auth.tokens import issue_token

    print(issue_token(settings, args.user, args.ttl, args.scope))
    return 0


def _outbox(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    settings.require("database_url")

    async def run() -> Any:
        conn = await db.connect(
            settings.database_url, application_name="genesis-cli", statement_cache_size=settings.db_statement_cache_size
        )
        try:
            await require_migrated(conn)
            with db.refusals():
                return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def _outbox_stats(args: argparse.Namespace, settings: Settings) -> int:
    row = _outbox(settings, lambda conn: conn.fetchrow("SELECT * FROM outbox_stats()"))
    print(json.dumps({"backlog": row["pending"], **row}, indent=2))  # backlog: §6's word, the gauge's name
    return 0


# The row without its payload (the event itself: GET …/events), and where it landed once SENT.
OUTBOX_ROW = """
    SELECT id, event_id, topic, key, status, attempts, kafka_partition, kafka_offset, headers, last_error,
           created_at, sent_at, failed_at
      FROM event_outbox WHERE event_id = $1
"""


def _outbox_show(args: argparse.Namespace, settings: Settings) -> int:
    row = _outbox(settings, lambda conn: conn.fetchrow(OUTBOX_ROW, args.event_id))
    if row is None:
        print(f"genesis: no outbox row for event {args.event_id}", file=sys.stderr)
        return 1
    shown = dict(row)
    if row["status"] == "SENT" and row["kafka_offset"] is not None:
        shown["landed"] = f"{row['topic']} partition {row['kafka_partition']}, offset {row['kafka_offset']}"
    print(json.dumps(shown, indent=2, default=str))
    return 0


def _topic_tail(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("kafka_bootstrap_servers")
    from genesis.cli.topic_tail import tail

    session = str(args.session) if args.session else None

    def line(text: str) -> None:
        print(text, flush=True)  # one line as each record comes, also through a pipe

    asyncio.run(tail(settings, session=session, from_beginning=args.from_beginning, out=line))
    return 0


def _outbox_requeue(args: argparse.Namespace, settings: Settings) -> int:
    count = _outbox(settings, lambda conn: conn.fetchval("SELECT requeue_outbox($1)", args.id))
    print(f"requeued {count} row(s)")
    return 0


def _outbox_discard(args: argparse.Namespace, settings: Settings) -> int:
    _outbox(settings, lambda conn: conn.fetchval("SELECT discard_outbox($1, $2)", args.id, args.reason))
    print(f"discarded row {args.id}")
    return 0


def _outbox_prune(args: argparse.Namespace, settings: Settings) -> int:
    def progress(total: int) -> None:
        print(f"pruned {total} row(s)…", file=sys.stderr, flush=True)

    total = _outbox(settings, lambda conn: prune_sent(conn, args.older_than, progress=progress))
    print(f"pruned {total} SENT row(s) older than {args.older_than:g}s")
    return 0
