"""A CLIENT span per SQL function call the API makes (`db.call` / `db.fetchval`), with the database semantic
conventions' stable attributes, when the API exports spans and TRACE_SQL_SPANS asks for them
(genesis.telemetry.tracing.setup turns it on).

Ours rather than the asyncpg instrumentation: that one wraps every asyncpg method of every connection (the
listener's pings, the outbox gauges' refresh) and rebuilds its attributes per query, with a regular expression
on the query text; the API's request path makes exactly one call per request, and everything about it but
the query is known when the pool is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import asyncpg
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv.attributes import db_attributes, error_attributes, server_attributes
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

_tracer = trace.get_tracer(__name__)
_enabled = False
# Per query text: the span name and its attributes; the API has a dozen queries.
_queries: dict[str, tuple[str, dict[str, str | int]]] = {}
_server: dict[str, str | int] = {db_attributes.DB_SYSTEM_NAME: "postgresql"}


def enable(dsn: str) -> None:
    """Spans from now on, with `db.namespace` and `server.*` taken from the API's DSN."""
    global _enabled
    _enabled = True
    _server.update(dsn_attributes(dsn))
    _queries.clear()


def dsn_attributes(dsn: str) -> Mapping[str, str | int]:
    """What a URL DSN says of the server (a libpq keyword DSN or a socket path leaves them out)."""
    try:
        url = urlsplit(dsn)
        port = url.port
    except ValueError:
        return {}
    found: dict[str, str | int] = {}
    if url.path.strip("/"):
        found[db_attributes.DB_NAMESPACE] = url.path.strip("/")
    if url.hostname:
        found[server_attributes.SERVER_ADDRESS] = url.hostname
        found[server_attributes.SERVER_PORT] = port or 5432
    return found


def _describe(query: str) -> tuple[str, dict[str, str | int]]:
    described = _queries.get(query)
    if described is None:
        # "SELECT * FROM submit_command($1, …)" → operation SELECT, procedure submit_command.
        words = query.replace("(", " ").split()
        operation = words[0].upper() if words else ""
        procedure = next((w for w in words if w.isidentifier() and w.upper() not in _KEYWORDS), "")
        attributes = {**_server, db_attributes.DB_QUERY_TEXT: query, db_attributes.DB_OPERATION_NAME: operation}
        if procedure:
            attributes[db_attributes.DB_STORED_PROCEDURE_NAME] = procedure
        described = _queries[query] = (f"{operation} {procedure}".strip() or "postgresql", attributes)
    return described


_KEYWORDS = frozenset({"SELECT", "FROM", "AS", "CALL"})


def start(query: str, on_behalf: Sequence[Context] = ()) -> Span | None:
    """The span of one call, a child of the current (request) span, or for a call made on behalf of several
    requests (group commit's batch) a child of the first one's, with a link to each other's; None when spans are
    off."""
    if not _enabled:
        return None
    name, attributes = _describe(query)
    parent = on_behalf[0] if on_behalf else None
    links = [Link(c) for c in (trace.get_current_span(o).get_span_context() for o in on_behalf[1:]) if c.is_valid]
    return _tracer.start_span(name, context=parent, kind=SpanKind.CLIENT, attributes=attributes, links=links)


def end(span: Span | None, error: BaseException | None = None) -> None:
    if span is None:
        return
    if error is not None and span.is_recording():
        span.set_attribute(error_attributes.ERROR_TYPE, type(error).__qualname__)
        if isinstance(error, asyncpg.PostgresError) and error.sqlstate:
            span.set_attribute(db_attributes.DB_RESPONSE_STATUS_CODE, error.sqlstate)
        span.set_status(Status(StatusCode.ERROR))
    span.end()
