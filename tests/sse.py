"""A small Server-Sent Events reader for the tests."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class Message:
    id: int | None
    event: str | None
    data: dict[str, Any] | None
    comment: str | None = None


async def next_message(response: aiohttp.ClientResponse, seconds: float = 5.0) -> Message:
    """The next event or comment block; raises TimeoutError when nothing comes."""
    fields: dict[str, str] = {}
    comment: str | None = None
    async with asyncio.timeout(seconds):
        while True:
            raw = await response.content.readline()
            if not raw:
                raise ConnectionResetError("stream ended")
            line = raw.decode().rstrip("\n")
            if line == "":
                if fields or comment is not None:
                    data = json.loads(fields["data"]) if "data" in fields else None
                    event_id = int(fields["id"]) if "id" in fields else None
                    return Message(event_id, fields.get("event"), data, comment)
                continue
            if line.startswith(":"):
                comment = line[1:].strip()
                continue
            name, _, value = line.partition(":")
            fields[name] = value.lstrip(" ")


async def next_event(response: aiohttp.ClientResponse, seconds: float = 5.0) -> Message:
    """The next real event, skipping heartbeat comments."""
    while True:
        message = await next_message(response, seconds)
        if message.comment is None:
            return message
