"""GET /asyncapi.json: public like /openapi.json, and about this process's topic and CloudEvents source."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from api.app import create_app
from genesis import asyncapi
from genesis.settings import Settings
from tests.integration.tables import Client


async def test_served_without_a_token_with_the_defaults_it_is_the_committed_document(client: Client) -> None:
    response = await client.get("/asyncapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == asyncapi.document()


async def test_it_names_the_configured_topic_and_source(settings: Settings, aiohttp_client: Callable[..., Any]) -> None:
    configured = dataclasses.replace(settings, kafka_topic="genesis.events.v1", cloudevents_source="/novels/genesis")
    client: Client = await aiohttp_client(create_app(configured))
    doc = await (await client.get("/asyncapi.json")).json()
    channel = doc["channels"][asyncapi.CHANNEL]
    assert channel["address"] == channel["bindings"]["kafka"]["topic"] == "genesis.events.v1"
    assert doc["components"]["schemas"]["RecordHeaders"]["properties"]["ce_source"]["default"] == "/novels/genesis"
