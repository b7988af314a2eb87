"""Reading requests: JSON bodies within the size limit, ids from the path, headers."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from aiohttp import web

from genesis import db, errors

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 64
_HEADER_TOKEN = re.compile(r"^[\x21-\x7e]{1,255}$")


async def json_body(request: web.Request, *, required: bool) -> Any:
    """The request's JSON value; an absent optional body is `{}` (a JSON `null` stays None, a non-object)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise errors.PayloadTooLarge(f"Body is over {MAX_BODY_BYTES} bytes", limit_bytes=MAX_BODY_BYTES)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.PayloadTooLarge(f"Body is over {MAX_BODY_BYTES} bytes", limit_bytes=MAX_BODY_BYTES) from None
    if not raw.strip():
        if required:
            raise errors.InvalidJson("A JSON body is required")
        return {}
    media = request.content_type
    if not (media == "application/json" or media.endswith("+json")):
        raise errors.UnsupportedMediaType(
            f"Content-Type must be application/json, not {media!r}", supported=["application/json"]
        )
    try:
        value = json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidJson(f"Body is not valid JSON: {exc}") from None
    except RecursionError:
        raise errors.InvalidJson(f"Body is nested deeper than {MAX_DEPTH} levels") from None
    _check_storable(value)
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")  # Python's json accepts NaN/Infinity; jsonb does not


def _check_storable(value: Any) -> None:
    """What jsonb cannot hold (NUL, lone surrogates) or we will not (deep nesting) is a 422, not a 500."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise errors.ValidationFailed(
                    f"Body is nested deeper than {MAX_DEPTH} levels", fields={"body": f"at most {MAX_DEPTH} levels"}
                )
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str) and not db.storable_text(item):
            raise errors.ValidationFailed(
                "Strings must not contain NUL or unpaired surrogate characters",
                fields={"body": "no NUL or unpaired surrogate characters"},
            )


def path_uuid(request: web.Request, name: str, not_found: type[errors.DomainError]) -> uuid.UUID:
    """An id from the path; a malformed one names nothing, so it is the same 404 as an unknown one."""
    raw = request.match_info[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise not_found(f"{name} {raw!r} not found") from None


def header_token(request: web.Request, name: str) -> str | None:
    value = request.headers.get(name)
    if value is None:
        return None
    if not _HEADER_TOKEN.match(value):
        raise errors.ValidationFailed(
            f"{name} must be 1-255 visible ASCII characters", fields={name: "1-255 visible ASCII characters"}
        )
    return value
