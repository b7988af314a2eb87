"""An identity provider's signing keys, from its JWKS document at JWT_JWKS_URL (CONTRACT §4).

The document is fetched with aiohttp, so the event loop never blocks on the provider, within a bounded timeout.
Keys are cached by `kid`. A `kid` the cache does not hold refetches the document, but at most once per
`refetch_interval` and one fetch at a time: a flood of tokens with made-up kids costs the provider one request per
interval, not one per token. A failed fetch keeps the keys already cached, so while the provider is down the
tokens it signed before go on working.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
import jwt

from genesis import errors

log = logging.getLogger("genesis.jwks")

MAX_DOCUMENT_BYTES = 1024 * 1024  # a JWKS document is a few KiB; more is not one
# Which key type can verify which algorithm family; HMAC ("oct") keys never come from a JWKS here.
_KTY_FOR_PREFIX = {"RS": "RSA", "PS": "RSA", "ES": "EC"}


class JwksKeys:
    def __init__(self, url: str, *, timeout: float, refetch_interval: float = 30.0) -> None:
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._refetch_interval = refetch_interval
        self._keys: dict[str | None, dict[str, Any]] = {}  # kid → its JWK (None: the one key without a kid)
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        self.fetches = 0  # documents requested, for the logs and the tests

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The key `kid` names, bound to `algorithm` (already checked against the allow-list)."""
        jwk = self._lookup(kid)
        if jwk is None:
            async with self._lock:  # one fetch at a time; whoever waited finds what it fetched
                jwk = self._lookup(kid)
                if jwk is None and time.monotonic() - self._fetched_at >= self._refetch_interval:
                    await self._refresh()
                    jwk = self._lookup(kid)
        if jwk is None:
            raise errors.Unauthorized("Invalid token: no known signing key has this kid")
        bound = jwk.get("alg") or algorithm
        if bound != algorithm or _KTY_FOR_PREFIX.get(algorithm[:2]) != jwk.get("kty"):
            raise errors.Unauthorized("Invalid token: the key this kid names does not sign with this alg")
        try:
            return jwt.PyJWK(jwk, algorithm)
        except jwt.PyJWTError:
            raise errors.Unauthorized("Invalid token: the key this kid names is unusable") from None

    def _lookup(self, kid: str | None) -> dict[str, Any] | None:
        # A token without a kid can only mean a provider's one key.
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        self.fetches += 1
        try:
            document = await self._fetch()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("JWKS fetch from %s failed (%s); keeping %d cached keys", self._url, exc, len(self._keys))
            return
        keys = _signing_keys(document)
        if not keys:
            log.warning("JWKS document at %s holds no usable signing key; keeping the cached ones", self._url)
            return
        self._keys = keys

    async def _fetch(self) -> Any:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        async with self._http.get(self._url, headers={"Accept": "application/json"}) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ValueError("document too large")
            return json.loads(body)


def _signing_keys(document: Any) -> dict[str | None, dict[str, Any]]:
    """The document's RSA and EC signing keys by kid (a key PyJWT cannot load is left out)."""
    entries = document.get("keys") if isinstance(document, dict) else None
    keys: dict[str | None, dict[str, Any]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC") or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        try:
            jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        keys[kid if isinstance(kid, str) else None] = entry
    return keys
