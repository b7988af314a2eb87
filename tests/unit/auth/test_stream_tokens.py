"""Stream tokens and access tokens never pass for each other, whatever key signed them."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from genesis import errors
from genesis.auth.stream_tokens import AUDIENCE, TOKEN_TYPE, StreamTokens, signing_key
from genesis.auth.tokens import Principal, TokenVerifier
from genesis.settings import Settings

SECRET = "unit-secret-" + "u" * 32
SETTINGS = Settings(jwt_secret=SECRET)


async def test_a_token_with_the_stream_audience_is_refused_as_a_bearer_token_even_with_the_access_key() -> None:
    claims = {"sub": "alice", "exp": int(time.time()) + 60, "aud": AUDIENCE}
    forged = jwt.encode(claims, SECRET, algorithm="HS256", headers={"typ": TOKEN_TYPE})
    with pytest.raises(errors.Unauthorized, match="a stream token only opens an event stream"):
        await TokenVerifier(SETTINGS).authenticate(f"Bearer {forged}")


def test_the_derived_key_is_not_the_access_key_and_every_replica_derives_the_same() -> None:
    assert signing_key(SETTINGS) != SECRET.encode()
    assert signing_key(SETTINGS) == signing_key(Settings(jwt_secret=SECRET))
    assert signing_key(Settings(jwt_secret=SECRET, stream_token_secret="x" * 32)) == b"x" * 32


def test_a_token_of_the_stream_key_without_the_stream_type_is_refused() -> None:
    session_id = uuid.uuid4()
    claims = {"sub": "alice", "sid": str(session_id), "aud": AUDIENCE, "exp": time.time() + 60, "access_exp": 1e10}
    untyped = jwt.encode(claims, signing_key(SETTINGS), algorithm="HS256")
    with pytest.raises(errors.Unauthorized, match="not a stream token"):
        StreamTokens(SETTINGS).verify(untyped, str(session_id))


def test_a_minted_token_carries_the_access_tokens_expiry() -> None:
    tokens, session_id = StreamTokens(SETTINGS), uuid.uuid4()
    access_exp = time.time() + 3600
    token, expires_at = tokens.mint(Principal("alice", frozenset({"genesis:agent"}), access_exp), session_id)
    assert expires_at <= time.time() + SETTINGS.stream_token_ttl
    principal = tokens.verify(token, str(session_id).upper())  # the path's id, however it is spelled
    assert principal == Principal("alice", frozenset(), access_exp)  # no scope rides along
