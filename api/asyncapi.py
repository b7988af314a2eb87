"""GET /asyncapi.json: the AsyncAPI 3.0 description of the topic (genesis/asyncapi.py), for this process's
KAFKA_TOPIC and CLOUDEVENTS_SOURCE. No auth, like /openapi.json."""

from __future__ import annotations

from aiohttp import web

from api import state
from genesis import asyncapi

routes = web.RouteTableDef()


@routes.get("/asyncapi.json", name="asyncapi")
async def asyncapi_json(request: web.Request) -> web.Response:
    settings = request.app[state.SETTINGS]
    return web.json_response(asyncapi.document(settings.kafka_topic, settings.cloudevents_source))
