"""Database access: pools with JSON codecs, and SQL calls that retry serialization failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import asyncpg
from opentelemetry.context import Context

from genesis import errors
from genesis.telemetry import db_spans

T = TypeVar("T")
STATEMENT_CACHE_SIZE = 100  # asyncpg's default; 0 for a pooler that cannot keep prepared statements (DB_…)

# A conflict between two commands of one session is resolved by running the loser again;
# with the session row locked first, one more round is almost always enough.
SERIALIZATION_RETRIES = 8


# The database went away under us (asyncpg raises InternalClientError when a connection dies
# between two protocol states): callers wait and go on.
DATABASE_GONE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.OperatorInterventionError,
)
# The server answers, and refuses who we say we are or where: a setting to mend, not a wait. Its 28P01 (wrong
# password) is a 28000 too.
DATABASE_REFUSED = (asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError)


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    for pg_type in ("json", "jsonb"):
        await conn.set_type_codec(pg_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Nothing to reset: pooled sessions never LISTEN, SET, lock or open cursors (asyncpg still rolls
    back an open transaction). Skipping the default RESET ALL saves a round trip per request."""


async def create_pool(
    dsn: str,
    *,
    application_name: str,
    min_size: int = 1,
    max_size: int = 20,
    statement_cache_size: int = STATEMENT_CACHE_SIZE,
) -> asyncpg.Pool[Any]:
    """A pool whose sessions name themselves (event metadata `source_service`).

    `application_name` is its only startup parameter: PgBouncer forwards it and refuses unknown ones. An event's
    outbox row gets the database defaults `genesis migrate` sets (`genesis.kafka_topic`, `…cloudevents_source`),
    and the relay publishes it to its own KAFKA_TOPIC with its own CLOUDEVENTS_SOURCE (relay/worker.py).
    Its sessions run at the server's default isolation (READ COMMITTED), one statement one transaction.
    """
    pool: asyncpg.Pool[Any] = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        statement_cache_size=statement_cache_size,
        server_settings={"application_name": application_name},
    )
    return pool


async def connect(
    dsn: str, *, application_name: str, statement_cache_size: int = STATEMENT_CACHE_SIZE
) -> asyncpg.Connection[Any]:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(
        dsn, server_settings={"application_name": application_name}, statement_cache_size=statement_cache_size
    )
    await _init_connection(conn)
    return conn


async def call(pool: asyncpg.Pool[Any], query: str, *args: object) -> asyncpg.Record | None:
    """One call of a SQL function that writes: one statement, hence one transaction, retried on serialization
    failures and deadlocks (with jitter), then SERVICE_BUSY."""
    return await retrying(query, lambda: pool.fetchrow(query, *args))


async def retrying(query: str, attempt: Callable[[], Awaitable[T]]) -> T:
    for n in range(SERIALIZATION_RETRIES):
        try:
            with refusals():
                return await traced(query, attempt)
        except (asyncpg.SerializationError, asyncpg.DeadlockDetectedError):
            # Full jitter keeps colliding retries apart.
            await asyncio.sleep(random.uniform(0, 0.005 * 2**n))
    raise errors.Busy("The session is busy; try again", retry_after=1)


async def fetchval(pool: asyncpg.Pool[Any], query: str, *args: object) -> Any:
    """One read-only call of a SQL function, its refusals as domain errors."""
    with refusals():
        return await traced(query, lambda: pool.fetchval(query, *args))


async def traced(query: str, attempt: Callable[[], Awaitable[T]], on_behalf: Sequence[Context] = ()) -> T:
    """One statement, in a CLIENT span of its own when the API exports spans (genesis.telemetry.db_spans): a child
    of the current span, or of the first of `on_behalf` (the requests a batch call serves) linked from the rest."""
    span = db_spans.start(query, on_behalf)
    try:
        result = await attempt()
    except BaseException as exc:
        db_spans.end(span, exc)
        raise
    db_spans.end(span)
    return result


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """Turns the SQL functions' refusals (GSxxx SQLSTATEs) into `errors.DomainError`."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        domain = errors.from_postgres(exc)
        if domain is None:
            raise
        raise domain from None


def storable_text(text: str) -> bool:
    """Whether PostgreSQL text and jsonb can hold `text`: no NUL, no unpaired surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
