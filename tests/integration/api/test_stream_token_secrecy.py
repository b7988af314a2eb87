"""A stream token never reaches a log or a span (CONTRACT §5): the real `genesis api` at LOG_LEVEL=DEBUG, exporting
its spans over OTLP, serves streams opened with stream tokens (good, expired, of another session, with the name
percent-encoded); the token appears in neither its output nor any span attribute, and `url.query` says REDACTED."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import aiohttp

from genesis.auth.tokens import issue_token
from genesis.settings import Settings
from tests.api_process import running_api
from tests.conftest import JWT_SECRET
from tests.otlp_receiver import OtlpReceiver
from tests.relay_harness import eventually
from tests.sse import next_event


async def test_stream_tokens_are_in_no_log_line_and_no_span(database_url: str) -> None:
    bearer = {"Authorization": f"Bearer {issue_token(Settings(jwt_secret=JWT_SECRET), 'alice', ttl=600)}"}
    async with OtlpReceiver().running() as receiver:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        async with (
            # Long enough for the four requests below on a loaded machine; the test then waits it out.
            running_api(database_url, LOG_LEVEL="DEBUG", STREAM_TOKEN_TTL="8", **otel) as api,
            aiohttp.ClientSession(api.base_url) as http,
        ):
            async with http.post("/genesis/sessions", headers=bearer) as r:
                session_id = (await r.json())["id"]
            async with http.post("/genesis/sessions", headers=bearer) as r:
                other_id = (await r.json())["id"]
            async with http.post(f"/genesis/sessions/{session_id}/stream-tokens", headers=bearer) as r:
                minted = await r.json()
            token, expires_at = minted["stream_token"], datetime.fromisoformat(minted["expires_at"]).timestamp()
            stream = f"/genesis/sessions/{session_id}/events/stream"
            async with http.get(f"{stream}?stream_token={token}&after=0") as opened:
                assert (await next_event(opened)).event == "Genesis.Session.Created"
            async with http.get(f"/genesis/sessions/{other_id}/events/stream?stream_token={token}") as r:
                assert r.status == 401
            async with http.get(f"{stream}?after=0&stream%5Ftoken={token}") as opened:  # the name encoded
                assert opened.status == 200
            async with http.get(f"{stream}?stream_token={token[:-4]}AAAA") as r:  # a forged signature
                assert r.status == 401
            await asyncio.sleep(max(0.0, expires_at + 0.2 - time.time()))
            async with http.get(f"{stream}?stream_token={token}") as r:  # expired
                assert r.status == 401

            async def exported() -> bool:
                return sum("stream" in s.attributes.get("http.route", "") for s in receiver.spans) >= 5

            await eventually(exported, within=10, what="the stream requests' spans")
    output = api.output
    assert "DEBUG" in output  # the API did log at DEBUG
    signature = token.rsplit(".", 1)[1]
    assert token not in output
    assert signature not in output
    for span in receiver.spans:
        assert all(signature not in str(value) for value in span.attributes.values()), span
    queries = sorted(str(s.attributes.get("url.query")) for s in receiver.spans if "stream" in s.name)
    assert queries.count("stream_token=REDACTED&after=0") == 1
    assert queries.count("after=0&stream_token=REDACTED") == 1
