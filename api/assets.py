"""The files the /docs and /console pages load, answered whole from memory: 200 with the file, or a JSON 404.

Never a range (206, or 416 with an empty body) or a 304, as a file handler answers: the API's document describes
neither, and every error the API gives is `{"error_code", "message"}`. The files are small and cached for a day."""

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
CACHE_CONTROL = "public, max-age=86400"


@functools.lru_cache(maxsize=32)
def _read(path: Path) -> bytes:
    return path.read_bytes()


def asset_response(path: Path | None) -> web.Response:
    """`path` (one of a page's known files, or None for a name that is not one) as the answer."""
    if path is None:
        raise web.HTTPNotFound()
    media = MEDIA.get(path.suffix, "application/octet-stream")
    return web.Response(body=_read(path), content_type=media, headers={"Cache-Control": CACHE_CONTROL})
