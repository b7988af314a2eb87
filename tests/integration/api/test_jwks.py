"""JWT_JWKS_URL against the real `genesis api` and a real JWKS provider (an aiohttp server that can go down).

kid picks the key; the document is cached; an unknown kid refetches it at most once per
JWT_JWKS_REFETCH_INTERVAL, one fetch at a time; while the provider is down or hangs the cached keys go on
working and nothing waits longer than JWT_JWKS_TIMEOUT; alg comes from the allow-list only.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.api_process import ApiProcess, running_api
from tests.conftest import STREAM_SECRET
from tests.jwks_provider import EC_KEY, RSA_KEY, Provider, jwk

REFETCH = 2.0
TIMEOUT = 1.0
NEW_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    p = Provider()
    await p.up()
    yield p
    await p.down()


@pytest.fixture
async def api(database_url: str, provider: Provider) -> AsyncIterator[ApiProcess]:
    env = {"JWT_SECRET": "", "JWT_JWKS_URL": provider.url, "JWT_JWKS_REFETCH_INTERVAL": str(REFETCH),
           "JWT_JWKS_TIMEOUT": str(TIMEOUT), "JWT_ALGORITHMS": "RS256,ES256",
           "STREAM_TOKEN_SECRET": STREAM_SECRET}  # fmt: skip
    async with running_api(database_url, **env) as process:
        yield process


def _token(key: Any, kid: str | None, alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode({"sub": "jay", "iat": now, "exp": now + 600, **claims}, key, algorithm=alg, headers=headers)


async def _status(http: aiohttp.ClientSession, api: ApiProcess, token: str) -> int:
    # An unknown session: 404 once authenticated, 401 if not.
    url = f"{api.base_url}/genesis/sessions/{uuid.uuid4()}"
    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status == 401:
            assert (await response.json())["error_code"] == "UNAUTHORIZED"
        return response.status


async def test_kid_picks_the_key_and_the_document_is_fetched_once(api: ApiProcess, provider: Provider) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(5):
            assert await _status(http, api, _token(RSA_KEY, "k1")) == 404
            assert await _status(http, api, _token(EC_KEY, "k2", "ES256")) == 404
        assert provider.fetches == 1
        k1 = provider.keys[0]
        for bad in (
            _token(NEW_KEY, "k1"),  # the wrong key under a known kid
            _token(EC_KEY, "k1", "ES256"),  # an alg the kid's key does not sign with
            _token(RSA_KEY, "k2"),
            _token(k1["n"], "k1", "HS256"),  # HMAC with public material: not on the allow-list
            _token(RSA_KEY, "k1", "RS384"),  # allowed by nobody
            _token(RSA_KEY, None),  # two keys: a token without a kid names none of them
            jwt.encode({"sub": "jay", "exp": int(time.time()) + 60}, "", algorithm="none", headers={"kid": "k1"}),
        ):
            assert await _status(http, api, bad) == 401
        assert provider.fetches == 1  # known kids never refetch; nor do unknown ones within the interval


async def test_an_unknown_kid_refetches_at_most_once_per_interval(api: ApiProcess, provider: Provider) -> None:
    async with aiohttp.ClientSession() as http:
        assert await _status(http, api, _token(RSA_KEY, "k1")) == 404
        provider.keys.append(jwk(NEW_KEY, "k3", "RS256"))  # the provider rotates in a new key
        flood = [_token(NEW_KEY, f"made-up-{n}") for n in range(30)] + [_token(NEW_KEY, "k3")]
        assert set(await asyncio.gather(*(_status(http, api, t) for t in flood))) == {401}
        assert provider.fetches == 1  # within the interval of the first fetch: none

        await asyncio.sleep(REFETCH + 0.2)
        statuses = await asyncio.gather(*(_status(http, api, t) for t in flood))
        assert provider.fetches == 2  # 31 unknown kids at once: one fetch, the rest waited for it
        assert statuses[-1] == 404  # k3 now verifies
        assert set(statuses[:-1]) == {401}


async def test_cached_keys_keep_working_while_the_provider_is_down_or_hangs(
    api: ApiProcess, provider: Provider
) -> None:
    async with aiohttp.ClientSession() as http:
        assert await _status(http, api, _token(RSA_KEY, "k1")) == 404
        await provider.down()
        await asyncio.sleep(REFETCH + 0.2)
        assert await _status(http, api, _token(NEW_KEY, "k9")) == 401  # the refetch fails: refused, not a 5xx
        assert await _status(http, api, _token(RSA_KEY, "k1")) == 404

        await provider.up()
        provider.hang = True
        await asyncio.sleep(REFETCH + 0.2)
        done: list[str] = []

        async def unknown_kid() -> int:
            status = await _status(http, api, _token(NEW_KEY, "k8"))
            done.append("unknown kid")
            return status

        async def meanwhile() -> None:
            await asyncio.sleep(0.2)  # while the API waits on the hanging provider
            assert await _status(http, api, _token(EC_KEY, "k2", "ES256")) == 404
            async with http.get(f"{api.base_url}/healthz") as response:
                assert response.status == 200
            done.append("meanwhile")

        fetches = provider.fetches
        status, _ = await asyncio.gather(unknown_kid(), meanwhile())
        assert status == 401
        assert provider.fetches == fetches + 1
        # The event loop was not blocked by the fetch: other requests were answered before it gave up.
        assert done == ["meanwhile", "unknown kid"]
