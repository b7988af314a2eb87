"""Development tokens and their verification, without a server."""

from __future__ import annotations

import time

import jwt
import pytest

from genesis import errors
from genesis.auth import tokens
from genesis.auth.tokens import AGENT_SCOPE, Principal, TokenVerifier, issue_token, parse_scopes
from genesis.settings import Settings, SettingsError

SECRET = "unit-secret-" + "s" * 60  # long enough for HS512 without a warning


async def test_an_issued_token_verifies_and_carries_audience_and_issuer() -> None:
    settings = Settings(jwt_secret=SECRET, jwt_audience="genesis-api", jwt_issuer="dev")
    token = issue_token(settings, "bob", ttl=60)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="genesis-api", issuer="dev")
    assert claims["sub"] == "bob"
    assert 0 < claims["exp"] - time.time() <= 60
    assert (await TokenVerifier(settings).authenticate(f"Bearer {token}")).user_id == "bob"
    assert (await TokenVerifier(settings).authenticate(f"bearer   {token}")).user_id == "bob"


async def test_issue_token_uses_the_configured_hmac_algorithm() -> None:
    settings = Settings(jwt_secret=SECRET, jwt_algorithms=("RS256", "HS512"))
    token = issue_token(settings, "bob")
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    assert (await TokenVerifier(settings).authenticate(f"Bearer {token}")).user_id == "bob"


def test_issue_token_needs_a_secret() -> None:
    with pytest.raises(errors.DomainError, match="JWT_SECRET"):
        issue_token(Settings(jwt_public_key="-----BEGIN PUBLIC KEY-----"), "bob")


def test_a_verifier_needs_a_key() -> None:
    from genesis.settings import SettingsError

    with pytest.raises(SettingsError, match="JWT_SECRET"):
        TokenVerifier(Settings())


@pytest.mark.parametrize("header", [None, "", "Token abc", "Bearer ", "Bearer x.y.z"])
async def test_bad_headers_are_unauthorized(header: str | None) -> None:
    with pytest.raises(errors.Unauthorized):
        await TokenVerifier(Settings(jwt_secret=SECRET)).authenticate(header)


async def test_scope_claim_grants_roles_and_expiry_is_kept() -> None:
    settings = Settings(jwt_secret=SECRET)
    token = issue_token(settings, "agent-1", 60, "genesis:agent  other")
    principal = await TokenVerifier(settings).authenticate(f"Bearer {token}")
    assert principal.user_id == "agent-1"
    assert principal.scopes == {"genesis:agent", "other"}
    assert AGENT_SCOPE in principal.scopes
    assert 0 < principal.expires_at - time.time() <= 60


def test_a_scope_claim_that_is_not_a_string_grants_nothing() -> None:
    assert parse_scopes(["genesis:agent"]) == frozenset()
    assert parse_scopes(None) == frozenset()
    assert parse_scopes("") == frozenset()


class _Counting(TokenVerifier):
    """Counts signature checks, to tell a verified token kept from one verified again."""

    decoded = 0

    def _decode(self, token: str, key: str | jwt.PyJWK) -> Principal:
        self.decoded += 1
        return super()._decode(token, key)


async def test_a_verified_token_is_kept_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(jwt_secret=SECRET)
    verifier, token = _Counting(settings), issue_token(settings, "bob", ttl=60)
    first = await verifier.authenticate(f"Bearer {token}")
    assert await verifier.authenticate(f"bearer {token}") is first
    assert verifier.decoded == 1
    # Past its exp (by the verifier's clock) it is checked again, as PyJWT would refuse it.
    later = first.expires_at
    monkeypatch.setattr(time, "time", lambda: later)
    await verifier.authenticate(f"Bearer {token}")
    assert verifier.decoded == 2


async def test_refused_tokens_are_not_kept_and_the_kept_ones_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 2)
    settings = Settings(jwt_secret=SECRET)
    verifier = _Counting(settings)
    forged = issue_token(Settings(jwt_secret="other-" + SECRET), "bob")
    for _ in range(2):
        with pytest.raises(errors.Unauthorized):
            await verifier.authenticate(f"Bearer {forged}")
    assert verifier.decoded == 2
    for user in ("a", "b", "c"):
        await verifier.authenticate(f"Bearer {issue_token(settings, user)}")
    assert len(verifier._verified) == 2


def test_a_public_key_that_no_allowed_algorithm_can_use_stops_start_up() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    TokenVerifier(Settings(jwt_public_key=pem, jwt_algorithms=("ES256",)))  # a fitting key starts
    for key, algorithms in (("garbage", ("RS256",)), (pem, ("RS256",))):
        with pytest.raises(SettingsError, match=r"^JWT_PUBLIC_KEY: not a PEM public key for any of \['RS256'\]$"):
            TokenVerifier(Settings(jwt_public_key=key, jwt_algorithms=algorithms))
