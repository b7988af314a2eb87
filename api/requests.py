"""Reading requests: JSON bodies within the size limit, ids from the path, headers."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from genesis import db, errors

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 64
MAX_HEADER_TOKEN = 255
MAX_INT_DIGITS = 1000  # far more than any payload needs; Python refuses to parse 4,300 and more
_HEADER_TOKEN = re.compile(r"^[\x21-\x7e]{1,255}$")


class _Unstorable:
    """A number JSON allows but jsonb (or a reader of it) cannot hold, kept so the check can name its field."""

    def __init__(self, why: str) -> None:
        self.why = why


def _parse_int(raw: str) -> int | _Unstorable:
    digits = len(raw.lstrip("-"))
    return int(raw) if digits <= MAX_INT_DIGITS else _Unstorable(f"an integer of at most {MAX_INT_DIGITS} digits")


def _parse_float(raw: str) -> float | _Unstorable:
    value = float(raw)  # 1e400 is inf to Python, and jsonb has no infinity
    return value if value not in (float("inf"), float("-inf")) else _Unstorable("a finite number")


async def json_body(request: web.Request, *, required: bool) -> Any:
    """The request's JSON value; an absent optional body is `{}` (a JSON `null` stays None, a non-object)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise errors.PayloadTooLarge(f"Body is over {MAX_BODY_BYTES} bytes", limit_bytes=MAX_BODY_BYTES)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.PayloadTooLarge(f"Body is over {MAX_BODY_BYTES} bytes", limit_bytes=MAX_BODY_BYTES) from None
    except RequestPayloadError as exc:  # a Content-Encoding the body does not match ("gzip" over plain text)
        raise errors.InvalidJson(f"Body could not be read: {exc}") from None
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
        value = json.loads(raw, parse_constant=_not_json, parse_int=_parse_int, parse_float=_parse_float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidJson(f"Body is not valid JSON: {exc}") from None
    except RecursionError:
        raise errors.InvalidJson(f"Body is nested deeper than {MAX_DEPTH} levels") from None
    _check_storable(value)
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")  # Python's json accepts NaN/Infinity; jsonb does not


def _check_storable(value: Any) -> None:
    """What jsonb cannot hold (NUL, lone surrogates, huge numbers) or we will not (deep nesting) is a 422 naming
    the field, not a 500."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise errors.ValidationFailed(
                    f"Body is nested deeper than {MAX_DEPTH} levels", fields={"body": f"at most {MAX_DEPTH} levels"}
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key, path or "body")
                    stack.append((child, f"{path}.{key}" if path else key, depth + 1))
            else:
                stack.extend((child, f"{path or 'body'}[{n}]", depth + 1) for n, child in enumerate(item))
        elif isinstance(item, str):
            _check_text(item, path or "body")
        elif isinstance(item, _Unstorable):
            raise errors.ValidationFailed(
                f"{path or 'body'} must be {item.why}", fields={path or "body": f"must be {item.why}"}
            )


def _check_text(text: str, path: str) -> None:
    if not db.storable_text(text):
        raise errors.ValidationFailed(
            "Strings must not contain NUL or unpaired surrogate characters",
            fields={path: "no NUL or unpaired surrogate characters"},
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
    if len(value) > MAX_HEADER_TOKEN:
        raise errors.HeaderTooLarge(
            f"{name} is over {MAX_HEADER_TOKEN} characters", header=name, limit_characters=MAX_HEADER_TOKEN
        )
    if not _HEADER_TOKEN.match(value):
        raise errors.ValidationFailed(
            f"{name} must be 1-255 visible ASCII characters", fields={name: "1-255 visible ASCII characters"}
        )
    return value
