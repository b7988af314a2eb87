"""Tokens of any shape against the real `genesis api`: a 401 in the JSON shape, never a 5xx.

Hypothesis builds the tokens: headers with any alg, kid, typ and crit, claims with odd `exp` and `sub`, and
signatures made with the configured key, with keys of other types, or just bytes. Each key configuration
(JWT_SECRET, an RSA and an EC JWT_PUBLIC_KEY, a JWKS provider) runs in its own API process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api_process import running_api
from tests.conftest import JWT_SECRET, STREAM_SECRET
from tests.jwks_provider import EC_KEY, RSA_KEY, Provider

EC384_KEY = ec.generate_private_key(ec.SECP384R1())
SIGNERS: dict[str, Any] = {"secret": JWT_SECRET, "rsa": RSA_KEY, "ec": EC_KEY, "ec384": EC384_KEY}
ALGS = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512", "ES256K",
        "EdDSA", "none", "None", "", "RS1"]  # fmt: skip
EXAMPLES = 150


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    public = key.public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
HEADERS = st.fixed_dictionaries(
    {"alg": st.sampled_from(ALGS) | JSONISH},
    optional={
        "kid": st.sampled_from(["k1", "k2", "", "../../etc/passwd", "x" * 3000]) | JSONISH,
        "typ": st.sampled_from(["JWT", "at+jwt", ""]) | JSONISH,
        "crit": st.sampled_from([["exp"], [], ["b64"], "exp"]) | JSONISH,
        "b64": st.booleans(),
        "jwk": JSONISH,
        "jku": st.just("http://127.0.0.1:1/jwks"),
    },
)
NOW = int(time.time())
CLAIMS = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.sampled_from(["fuzz", "", "\x00", "\ud800"]) | JSONISH,
        "exp": st.sampled_from([NOW + 600, NOW - 10, 10**400, -(10**400), "soon", 1e308]) | JSONISH,
        "nbf": st.sampled_from([NOW + 600, 10**30]) | JSONISH,
        "iat": JSONISH,
        "scope": JSONISH,
        "aud": JSONISH,
    },
)


@st.composite
def tokens(draw: st.DrawFn) -> str:
    header = draw(HEADERS)
    claims = draw(CLAIMS)
    way = draw(st.sampled_from(["sign", "bytes", "raw"]))
    if way == "raw":  # any text with dots in it
        return draw(st.text(alphabet="abcAB_-.=+/\x7f é", min_size=0, max_size=60))
    segments = [_b64(_dumps(header)), _b64(_dumps(claims))]
    signing_input = ".".join(segments).encode()
    if way == "bytes":
        signature = draw(st.binary(max_size=300))
    else:
        signature = _sign(draw(st.sampled_from(sorted(SIGNERS))), header.get("alg"), signing_input)
    return ".".join([*segments, _b64(signature)])


def _dumps(value: Any) -> bytes:
    # Python writes Infinity/NaN and 400-digit integers: exactly the odd input wanted.
    return json.dumps(value, default=str).encode("utf-8", "surrogatepass")


def _sign(signer: str, alg: object, signing_input: bytes) -> bytes:
    key = SIGNERS[signer]
    algorithm = alg if isinstance(alg, str) and alg in jwt.algorithms.get_default_algorithms() else None
    try:
        if algorithm is None:
            raise ValueError
        obj = jwt.algorithms.get_default_algorithms()[algorithm]
        prepared = obj.prepare_key(key)
        return bytes(obj.sign(signing_input, prepared))
    except Exception:  # a key that cannot sign with this alg: an HMAC over its PEM (key confusion) instead
        material = key.encode() if isinstance(key, str) else _pem(key).encode()
        return hmac.new(material, signing_input, hashlib.sha256).digest()


def _fuzz(port: int) -> list[str]:
    failures: list[str] = []
    path = f"/genesis/sessions/{uuid.uuid4()}"

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(tokens())
    def one(token: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.putrequest("GET", path)
            conn.putheader("Authorization", f"Bearer {token}".encode("latin-1", "replace"))
            conn.endheaders()
            response = conn.getresponse()
            status, body = response.status, response.read()
        finally:
            conn.close()
        if status >= 500 or status not in (400, 401, 404):
            failures.append(f"{status} for {token[:200]!r}: {body[:200]!r}")
        elif status == 401:
            shaped = json.loads(body)
            if shaped.get("error_code") != "UNAUTHORIZED" or not shaped.get("message"):
                failures.append(f"401 without the JSON shape for {token[:200]!r}")

    one()
    return failures


@pytest.mark.slow
@pytest.mark.parametrize("key", ["secret", "rsa", "ec", "jwks"])
async def test_no_token_of_any_shape_is_a_server_error(database_url: str, key: str) -> None:
    provider = Provider()
    await provider.up()
    env = {"secret": {}, "rsa": {"JWT_PUBLIC_KEY": _pem(RSA_KEY), "JWT_ALGORITHMS": "RS256,ES256,HS256"},
           "ec": {"JWT_PUBLIC_KEY": _pem(EC_KEY), "JWT_SECRET": "", "STREAM_TOKEN_SECRET": STREAM_SECRET},
           "jwks": {"JWT_JWKS_URL": provider.url, "JWT_JWKS_REFETCH_INTERVAL": "0.05",
                    "JWT_ALGORITHMS": "RS256,ES256,ES384,HS256"}}[key]  # fmt: skip
    try:
        async with running_api(database_url, **env) as api:
            failures = await asyncio.to_thread(_fuzz, api.port)
    finally:
        await provider.down()
    assert failures == []


async def test_the_reported_es256_header_with_an_rsa_key_is_a_401(database_url: str) -> None:
    token = ".".join([_b64(b'{"alg":"ES256"}'), "e30", "AAAA"])
    async with running_api(database_url, JWT_PUBLIC_KEY=_pem(RSA_KEY), JWT_ALGORITHMS="RS256,ES256") as api:
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        for _ in range(3):
            conn.request("GET", f"/genesis/sessions/{uuid.uuid4()}", headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            assert response.status == 401
            assert json.loads(response.read())["error_code"] == "UNAUTHORIZED"
        conn.close()
