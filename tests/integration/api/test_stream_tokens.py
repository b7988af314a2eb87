"""Stream tokens (CONTRACT §5): `POST …/stream-tokens`, then `?stream_token=` on the event stream, the way a browser's
native EventSource opens it (no Authorization header)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api.app import create_app
from genesis.auth.tokens import issue_token
from genesis.settings import Settings, SettingsError
from tests.conftest import STREAM_SECRET
from tests.integration.tables import Auth, Client, create_session
from tests.relay_harness import complete, submit
from tests.sse import Message, next_event, next_message


def _mint_url(session_id: str) -> str:
    return f"/genesis/sessions/{session_id}/stream-tokens"


def _stream_url(session_id: str, token: str, extra: str = "") -> str:
    return f"/genesis/sessions/{session_id}/events/stream?stream_token={token}{extra}"


async def _mint(client: Client, session_id: str, headers: dict[str, str]) -> str:
    response = await client.post(_mint_url(session_id), headers=headers)
    body = await response.json()
    assert response.status == 201, body
    return str(body["stream_token"])


async def test_a_stream_token_opens_the_stream_without_an_authorization_header(
    client: Client, auth: Auth, session_id: str, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    response = await client.post(_mint_url(session_id), headers=auth())
    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert set(body) == {"stream_token", "expires_at"}
    left = datetime.fromisoformat(body["expires_at"]).timestamp() - time.time()
    assert 0 < left <= settings.stream_token_ttl

    stream = await client.get(_stream_url(session_id, body["stream_token"]))
    assert stream.status == 200, await stream.text()
    assert (await next_event(stream)).event == "Genesis.Session.Created"
    await complete(conn, await submit(conn, session_id, "SubmitFeedback", {"feedback": "more"}, "alice"))
    assert (await next_event(stream, seconds=10)).event == "Genesis.Session.FeedbackSubmitted"
    stream.close()


async def test_only_the_owner_gets_one_and_only_with_a_bearer_token(
    client: Client, auth: Auth, session_id: str
) -> None:
    assert (await client.post(_mint_url(session_id))).status == 401
    refused = await client.post(_mint_url(session_id), headers=auth("mallory"))
    assert (refused.status, (await refused.json())["error_code"]) == (404, "SESSION_NOT_FOUND")
    assert (await client.post(_mint_url("not-a-uuid"), headers=auth())).status == 404


async def test_it_is_bound_to_its_session(client: Client, auth: Auth, session_id: str) -> None:
    other = await create_session(client, auth())
    token = await _mint(client, session_id, auth())
    response = await client.get(_stream_url(other, token))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["message"] == "Stream token is for another session"


async def test_a_stream_token_is_no_bearer_token_and_a_bearer_token_no_stream_token(
    client: Client, auth: Auth, session_id: str, make_token: Callable[..., str]
) -> None:
    token = await _mint(client, session_id, auth())
    as_bearer = {"Authorization": f"Bearer {token}"}
    for method, path in [
        ("GET", f"/genesis/sessions/{session_id}"),
        ("GET", f"/genesis/sessions/{session_id}/events/stream"),
        ("POST", _mint_url(session_id)),  # nor does it mint its own successor
    ]:
        response = await client.request(method, path, headers=as_bearer)
        assert response.status == 401, (method, path)
    refused = await client.get(_stream_url(session_id, make_token("alice")))
    assert refused.status == 401
    assert "not a stream token" in (await refused.json())["message"]


async def test_it_opens_a_stream_only_within_its_ttl_and_the_stream_outlives_it(
    settings: Settings, aiohttp_client: Callable[..., Any], auth: Auth, conn: asyncpg.Connection[Any]
) -> None:
    # 3 s: room for the first open on a loaded machine; then the test waits it out.
    client: Client = await aiohttp_client(create_app(dataclasses.replace(settings, stream_token_ttl=3)))
    session_id = await create_session(client, auth())
    token = await _mint(client, session_id, auth())
    opened = await client.get(_stream_url(session_id, token))
    assert opened.status == 200
    await asyncio.sleep(3.2)
    expired = await client.get(_stream_url(session_id, token))
    assert expired.status == 401
    assert "expired" in (await expired.json())["message"]
    await complete(conn, await submit(conn, session_id, "SubmitFeedback", {"feedback": "late"}, "alice"))
    seen = [(await next_event(opened, seconds=10)).event for _ in range(2)]  # the open stream goes on
    assert seen == ["Genesis.Session.Created", "Genesis.Session.FeedbackSubmitted"]
    opened.close()


async def test_the_stream_ends_when_the_access_token_it_came_from_expires(
    settings: Settings, aiohttp_client: Callable[..., Any], auth: Auth
) -> None:
    client: Client = await aiohttp_client(create_app(dataclasses.replace(settings, sse_heartbeat=0.3)))
    session_id = await create_session(client, auth())
    short = {"Authorization": f"Bearer {issue_token(settings, 'alice', ttl=2)}"}
    body = await (await client.post(_mint_url(session_id), headers=short)).json()
    assert datetime.fromisoformat(body["expires_at"]).timestamp() <= time.time() + 2  # never past the access token
    stream = await client.get(_stream_url(session_id, body["stream_token"]))
    assert stream.status == 200
    started = time.monotonic()
    messages: list[Message] = []
    while not messages or messages[-1].event != "token-expired":
        messages.append(await next_message(stream, seconds=5))
    assert time.monotonic() - started < 4
    assert await stream.content.read() == b""  # and the server ended it
    later = await client.get(_stream_url(session_id, body["stream_token"]))
    assert later.status == 401


async def test_any_replica_accepts_any_replicas_token(
    settings: Settings, aiohttp_server: Callable[..., Any], auth: Auth
) -> None:
    one: TestServer = await aiohttp_server(create_app(settings))
    two: TestServer = await aiohttp_server(create_app(settings))  # shares nothing with `one` but its settings
    async with aiohttp.ClientSession() as http:
        async with http.post(one.make_url("/genesis/sessions"), headers=auth()) as created:
            session_id = (await created.json())["id"]
        async with http.post(one.make_url(_mint_url(session_id)), headers=auth()) as minted:
            token = (await minted.json())["stream_token"]
        async with http.get(two.make_url(_stream_url(session_id, token))) as stream:
            assert stream.status == 200
            assert (await next_event(stream)).event == "Genesis.Session.Created"


def _public_key_settings(settings: Settings) -> tuple[Settings, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    keyed = dataclasses.replace(settings, jwt_secret="", jwt_public_key=pem.decode(), jwt_algorithms=("RS256",))
    return keyed, key


def test_with_a_public_key_the_service_needs_a_stream_token_secret(settings: Settings) -> None:
    keyed, _ = _public_key_settings(settings)
    with pytest.raises(SettingsError, match=r"^STREAM_TOKEN_SECRET is required with JWT_PUBLIC_KEY"):
        create_app(keyed)
    with pytest.raises(SettingsError, match="STREAM_TOKEN_SECRET must differ from JWT_SECRET"):
        create_app(dataclasses.replace(settings, stream_token_secret=settings.jwt_secret))


def test_a_short_stream_token_secret_is_named_but_never_echoed() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"STREAM_TOKEN_SECRET": "hunter2-hunter2"})
    assert str(refused.value) == "STREAM_TOKEN_SECRET: expected at least 32 characters (got 15)"


async def test_with_a_public_key_and_its_secret_two_replicas_share_stream_tokens(
    settings: Settings, aiohttp_server: Callable[..., Any]
) -> None:
    import jwt

    keyed, key = _public_key_settings(settings)
    keyed = dataclasses.replace(keyed, stream_token_secret=STREAM_SECRET)
    access = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, key, algorithm="RS256")
    headers = {"Authorization": f"Bearer {access}"}
    one: TestServer = await aiohttp_server(create_app(keyed))
    two: TestServer = await aiohttp_server(create_app(keyed))
    async with aiohttp.ClientSession() as http:
        async with http.post(one.make_url("/genesis/sessions"), headers=headers) as created:
            session_id = (await created.json())["id"]
        async with http.post(one.make_url(_mint_url(session_id)), headers=headers) as minted:
            token = (await minted.json())["stream_token"]
        async with http.get(two.make_url(_stream_url(session_id, token))) as stream:
            assert stream.status == 200
        # As a bearer token it fails: the public key verifies only RS256, and the token says so too.
        async with http.get(
            two.make_url(f"/genesis/sessions/{session_id}"), headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.status == 401
