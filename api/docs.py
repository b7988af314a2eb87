"""GET /docs: the OpenAPI document rendered by Swagger UI 5, whose files come from the `swagger-ui-py` package
(installed by pyproject.toml) and are served by the API itself: the page loads nothing from elsewhere, and its
Content-Security-Policy holds it to that."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aiohttp import web

from api.assets import asset_response

routes = web.RouteTableDef()

PAGE = Path(__file__).with_name("static") / "docs"


def _vendor() -> Path:
    spec = importlib.util.find_spec("swagger_ui")  # located, not imported (its module pulls in jinja2 and yaml)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


# The files the page loads, and where each is: only these are served.
ASSETS: dict[str, Path] = {
    "docs.js": PAGE / "docs.js",
    **{name: _vendor() / name for name in ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")},
}

# Swagger UI sets inline styles; everything else is from this origin. No eval, no remote image or font.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@routes.get("/docs", name="docs")
async def docs(request: web.Request) -> web.Response:
    return web.Response(
        text=(PAGE / "index.html").read_text(),
        content_type="text/html",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


@routes.get("/docs/static/{name}", name="docs_static")
async def asset(request: web.Request) -> web.Response:
    return asset_response(ASSETS.get(request.match_info["name"]), versioned=True)
