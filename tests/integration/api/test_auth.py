"""Authentication: every bad token is a JSON 401 with WWW-Authenticate: Bearer; RS256/ES256 with a
public key work, and the HS256-with-the-public-key confusion does not."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.app import create_app
from genesis.settings import Settings
from tests.conftest import JWT_SECRET, STREAM_SECRET
from tests.integration.tables import Client

AppClient = Callable[[web.Application], Any]


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "alice", "iat": now, "exp": now + 600}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)])


def _hmac_token(key: bytes, claims: dict[str, Any], alg: str = "HS256") -> str:
    """An HMAC token signed with arbitrary bytes (PyJWT itself refuses a PEM key as a secret)."""
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    signing_input = ".".join([_b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()), _b64(json.dumps(claims).encode())])
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64(signature)}"


async def _assert_401(response: Any) -> dict[str, Any]:
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert body["error_code"] == "UNAUTHORIZED"
    assert body["message"]
    return body


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


INVALID = "Invalid token: "
NOT_BEARER = "Authorization must be 'Bearer <token>'"
BAD_SUBJECT = "Token subject has characters a user id cannot hold"


def _bad_authorizations() -> dict[str, tuple[str | None, str]]:
    """Each bad Authorization header and the message it must get. Built when the test runs, so no token
    has expired on its own by then (only "expired" may say so)."""
    now = int(time.time())

    def hs256(**changes: Any) -> str:
        return "Bearer " + jwt.encode(_claims(**changes), JWT_SECRET, algorithm="HS256")

    return {
        "missing": (None, "Missing bearer token"),
        "empty": ("", "Missing bearer token"),
        "no token": ("Bearer", NOT_BEARER),
        "blank token": ("Bearer    ", NOT_BEARER),
        "basic scheme": ("Basic YWxpY2U6c2VjcmV0", NOT_BEARER),
        "token without scheme": (hs256().removeprefix("Bearer "), NOT_BEARER),
        "garbage": ("Bearer not-a-jwt", INVALID + "Not enough segments"),
        "three garbage parts": ("Bearer a.b.c", INVALID + "Invalid header padding"),
        "expired": (hs256(exp=now - 60), "Token expired"),
        "bad signature": (
            "Bearer " + jwt.encode(_claims(), "another-secret-" + "y" * 32, algorithm="HS256"),
            INVALID + "Signature verification failed",
        ),
        "alg none": (
            "Bearer " + _unsigned({"alg": "none", "typ": "JWT"}, _claims()),
            INVALID + "The specified alg value is not allowed",
        ),
        "alg none with a signature": (
            "Bearer " + _unsigned({"alg": "none"}, _claims(), b"sig"),
            INVALID + "The specified alg value is not allowed",
        ),
        "missing exp": (hs256(exp=None), INVALID + 'Token is missing the "exp" claim'),
        "missing sub": (hs256(sub=None), INVALID + 'Token is missing the "sub" claim'),
        "empty sub": (hs256(sub=""), "Token has no subject"),
        "NUL in sub": (hs256(sub="al\x00ice"), BAD_SUBJECT),
        "lone surrogate in sub": (hs256(sub="al\ud800ice"), BAD_SUBJECT),
        "HS512 when only HS256 is allowed": (
            "Bearer " + _hmac_token(JWT_SECRET.encode(), _claims(), "HS512"),
            INVALID + "The specified alg value is not allowed",
        ),
        "not yet valid": (hs256(nbf=now + 600), INVALID + "The token is not yet valid (nbf)"),
    }


async def test_every_bad_token_is_a_json_401_for_its_own_reason(client: Client, session_id: str) -> None:
    for name, (authorization, message) in _bad_authorizations().items():
        headers = {} if authorization is None else {"Authorization": authorization}
        for response in (
            await client.post("/genesis/sessions", headers=headers),
            await client.get(f"/genesis/sessions/{session_id}", headers=headers),
            await client.post(f"/genesis/sessions/{session_id}/commands", json={}, headers=headers),
        ):
            try:
                body = await _assert_401(response)
            except AssertionError as exc:
                raise AssertionError(f"{name}: {response.status}") from exc
            # Only the expired token may fail for being expired: any other failing so is a stale test token.
            assert (body["message"] == "Token expired") == (name == "expired"), (name, body)
            assert body["message"] == message, (name, body)


async def test_probes_need_no_token(client: Client) -> None:
    for path in ("/healthz", "/readyz"):
        response = await client.get(path)
        assert response.status == 200, path
        assert (await response.json())["status"] == "ok"


async def test_audience_and_issuer_are_checked_when_configured(settings: Settings, aiohttp_client: AppClient) -> None:
    configured = dataclasses.replace(settings, jwt_audience="genesis-api", jwt_issuer="https://auth.test/")
    client: Client = await aiohttp_client(create_app(configured))

    def token(**changes: Any) -> dict[str, str]:
        claims = _claims(**{"aud": "genesis-api", "iss": "https://auth.test/", **changes})
        return _bearer(jwt.encode(claims, JWT_SECRET, algorithm="HS256"))

    assert (await client.post("/genesis/sessions", headers=token())).status == 201
    assert (await client.post("/genesis/sessions", headers=token(aud=["other", "genesis-api"]))).status == 201
    for bad in (
        token(aud="someone-else"),
        token(aud=None),
        token(iss="https://evil.test/"),
        token(iss=None),
    ):
        await _assert_401(await client.post("/genesis/sessions", headers=bad))


async def test_audience_is_ignored_when_not_configured(client: Client) -> None:
    token = jwt.encode(_claims(aud="whatever", iss="anyone"), JWT_SECRET, algorithm="HS256")
    assert (await client.post("/genesis/sessions", headers=_bearer(token))).status == 201


def _pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def test_rs256_with_a_public_key_and_no_key_confusion(
    settings: Settings, aiohttp_client: AppClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    public_pem = _pem(rsa_key)
    # JWT_SECRET stays set: with a public key configured it must still not verify anything.
    keyed = dataclasses.replace(settings, jwt_public_key=public_pem, jwt_algorithms=("RS256", "HS256"))
    client: Client = await aiohttp_client(create_app(keyed))

    good = jwt.encode(_claims(sub="rita"), rsa_key, algorithm="RS256")
    response = await client.post("/genesis/sessions", headers=_bearer(good))
    assert response.status == 201
    assert (await response.json())["user_id"] == "rita"

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for bad in (
        _hmac_token(public_pem.encode(), _claims(sub="mallory")),  # the classic key confusion
        jwt.encode(_claims(sub="mallory"), JWT_SECRET, algorithm="HS256"),
        jwt.encode(_claims(sub="mallory"), other_key, algorithm="RS256"),
        jwt.encode(_claims(sub="mallory", exp=None), rsa_key, algorithm="RS256"),
        _unsigned({"alg": "none"}, _claims(sub="mallory")),
    ):
        await _assert_401(await client.post("/genesis/sessions", headers=_bearer(bad)))


async def test_es256_with_a_public_key_by_default_algorithms(settings: Settings, aiohttp_client: AppClient) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    keyed = dataclasses.replace(settings, jwt_secret="", jwt_public_key=_pem(key), stream_token_secret=STREAM_SECRET)
    client: Client = await aiohttp_client(create_app(keyed))
    token = jwt.encode(_claims(sub="erin"), key, algorithm="ES256")
    assert (await client.post("/genesis/sessions", headers=_bearer(token))).status == 201
    await _assert_401(await client.post("/genesis/sessions", headers=_bearer(_hmac_token(
        _pem(key).encode(), _claims(sub="mallory")
    ))))  # fmt: skip
