"""One SERVER span per request, named and attributed by the HTTP semantic conventions (stable `http.*`,
`url.*`, `server.*` names), in the caller's W3C trace when one came.

Ours rather than the aiohttp-server instrumentation: that one builds ~12 attributes per request (`str(request.url)`
and its redaction among them), two metric instruments and the old and new semconv variants, and each attribute
costs again when the span is encoded; `make bench-api` measured the difference (docs/benchmarks.md, Tracing off
against on). With nothing exported (no OTLP endpoint) the provider samples nothing of its own, so a request gets
a non-recording span that carries ids only: its events still get a traceparent.
"""

from __future__ import annotations

import functools
import os
import re
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry import context, propagate, trace
from opentelemetry.semconv.attributes import (
    error_attributes,
    http_attributes,
    network_attributes,
    server_attributes,
    url_attributes,
    user_agent_attributes,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from api.middlewares import STREAM_TOKEN
from genesis.telemetry import tracing

_tracer = trace.get_tracer(__name__)

# Methods outside RFC 9110 (and PATCH) are `_OTHER` on the span, so a client cannot mint span names.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_names: dict[tuple[str, str], str] = {}  # (method, route) → span name: a few dozen, built once each


@functools.cache
def _excluded() -> re.Pattern[str] | None:
    """The aiohttp-server instrumentation's setting, still honoured: regular expressions, comma-separated,
    searched in the path; such requests get no span (so nothing of theirs is traced)."""
    raw = os.environ.get("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS") or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS", "")
    patterns = [f"(?:{p.strip()})" for p in raw.split(",") if p.strip()]
    return re.compile("|".join(patterns)) if patterns else None


def _span_name(method: str, route: str) -> str:
    name = _names.get((method, route))
    if name is None:
        name = _names[(method, route)] = f"{'HTTP' if method == '_OTHER' else method} {route}".rstrip()
    return name


def _attributes(request: web.Request, method: str, route: str) -> dict[str, str | int]:
    version = request.version
    key = (method, route, request.scheme, request.host, version.major, version.minor, request.headers.get("User-Agent"))
    constant = _constant.get(key)
    if constant is None:
        if len(_constant) >= 1024:  # the Host and User-Agent headers are the client's: bounded
            _constant.clear()
        constant = _constant[key] = _constant_attributes(*key)
    attributes = {**constant, url_attributes.URL_PATH: request.path}
    if request.query_string:
        attributes[url_attributes.URL_QUERY] = _scrubbed_query(request)
    return attributes


# Query parameters that are credentials: their values never reach a span (semconv: scrubbed to "REDACTED").
_SECRET_PARAMETERS = frozenset({STREAM_TOKEN})


def _scrubbed_query(request: web.Request) -> str:
    """The query string, with every credential's value replaced; decoded keys are compared, so that an encoded
    name (`stream%5Ftoken`, which the route reads as `stream_token`) is caught too."""
    query = request.query
    if _SECRET_PARAMETERS.isdisjoint(query):
        return request.query_string
    return urlencode([(k, "REDACTED" if k in _SECRET_PARAMETERS else v) for k, v in query.items()])


# What is the same for every request of a route from one client: built once (a few µs a request).
_constant: dict[tuple[str, str, str, str, int, int, str | None], dict[str, str | int]] = {}


def _constant_attributes(
    method: str, route: str, scheme: str, host: str, major: int, minor: int, agent: str | None
) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        http_attributes.HTTP_REQUEST_METHOD: method,
        url_attributes.URL_SCHEME: scheme,
        network_attributes.NETWORK_PROTOCOL_VERSION: f"{major}.{minor}",
    }
    if route:
        attributes[http_attributes.HTTP_ROUTE] = route
    # The Host header as the client sent it ("[::1]:8000" for IPv6).
    name, colon, port = host.rpartition(":") if not host.endswith("]") else ("", "", "")
    if colon and port.isdigit():
        attributes[server_attributes.SERVER_ADDRESS] = name.strip("[]")
        attributes[server_attributes.SERVER_PORT] = int(port)
    elif host:
        attributes[server_attributes.SERVER_ADDRESS] = host.strip("[]")
    if agent:
        attributes[user_agent_attributes.USER_AGENT_ORIGINAL] = agent
    return attributes


@web.middleware
async def server_span_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request's span is current while the handler runs: its SQL calls are its children, and the
    trace context stored with the events it causes names it."""
    exporting = tracing.exporting()
    if exporting and (excluded := _excluded()) is not None and excluded.search(request.path):
        return await handler(request)
    method = request.method if request.method in _KNOWN_METHODS else "_OTHER"
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    span = _tracer.start_span(
        _span_name(method, route),
        context=propagate.extract(request.headers),
        kind=SpanKind.SERVER,
        attributes=_attributes(request, method, route) if exporting else None,
    )
    token = context.attach(trace.set_span_in_context(span))
    status: int | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except BaseException as exc:  # a handler's bug, or the client gone (CancelledError): no status was sent
        if span.is_recording():
            span.set_attribute(error_attributes.ERROR_TYPE, type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR))
        raise
    finally:
        if status is not None and span.is_recording():
            span.set_attribute(http_attributes.HTTP_RESPONSE_STATUS_CODE, status)
            if status >= 500:  # a 4xx is the client's error, not the server span's (semconv)
                span.set_attribute(error_attributes.ERROR_TYPE, str(status))
                span.set_status(Status(StatusCode.ERROR))
        span.end()
        context.detach(token)
