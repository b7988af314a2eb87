"""The files the /docs and /console pages load, answered whole: 200 with the file, or a JSON 404.

Never a range (206, or 416 with an empty body) or a 304, as a file handler answers: the API's document describes
neither, and every error the API gives is `{"error_code", "message"}`."""

from __future__ import annotations

import functools
from pathlib import Path

from aiohttp import web

MEDIA = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


@functools.lru_cache(maxsize=32)
def _read_once(path: Path) -> bytes:
    return path.read_bytes()


def asset_response(path: Path | None, *, versioned: bool) -> web.Response:
    """`path` (one of a page's known files, or None for a name that is not one) as the answer. `versioned`: the file
    changes only with an installed package (Swagger UI's), so it is read once and cached for a day; else (the
    console's own files, edited under `genesis dev`) it is read each time and revalidated."""
    if path is None:
        raise web.HTTPNotFound()
    body = _read_once(path) if versioned else path.read_bytes()
    cache = "public, max-age=86400" if versioned else "no-cache"
    return web.Response(body=body, content_type=MEDIA.get(path.suffix, "application/octet-stream"),
                        headers={"Cache-Control": cache})  # fmt: skip
