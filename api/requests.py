"""Reading requests: JSON bodies within the size limit, ids from the path, headers."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from aiohttp import web

from genesis import errors

MAX_BODY_BYTES = 64 * 1024
_HEADER_TOKEN = re.compile(r"^[\x21-\x7e]{1,255}$")


async def json_body(request: web.Request, *, required: bool) -> Any:
    """The request's JSON value (None when an optional body is absent)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise errors.PayloadTooLarge(f"Body is over {MAX_BODY_BYTES} bytes", limit_bytes=MAX_BODY_BYTES)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.PayloadTooLarge(f"Body is over {MAX_BODY_BYTES} bytes", limit_bytes=MAX_BODY_BYTES) from None
    if not raw.strip():
        if required:
            raise errors.InvalidJson("A JSON body is required")
        return None
    media = request.content_type
    if not (media == "application/json" or media.endswith("+json")):
        raise errors.UnsupportedMediaType(
            f"Content-Type must be application/json, not {media!r}", supported=["application/json"]
        )
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidJson(f"Body is not valid JSON: {exc}") from None


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
