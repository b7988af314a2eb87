"""A real JWKS provider for the tests: an aiohttp server on its own port that can go down or hang."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from genesis.local.services import free_port

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str, alg: str) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        text = jwt.algorithms.RSAAlgorithm.to_jwk(public)
    else:
        text = jwt.algorithms.ECAlgorithm.to_jwk(public)
    data: dict[str, Any] = json.loads(text)
    return {**data, "kid": kid, "alg": alg, "use": "sig"}


class Provider:
    """A JWKS endpoint: serves `keys`, counts fetches, can be stopped, restarted, or made to hang."""

    def __init__(self) -> None:
        self.port = free_port()
        self.keys = [jwk(RSA_KEY, "k1", "RS256"), jwk(EC_KEY, "k2", "ES256")]
        self.fetches = 0
        self.hang = False
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    async def _serve(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.hang:
            await asyncio.sleep(30)
        return web.json_response({"keys": self.keys})

    async def up(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._serve)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
