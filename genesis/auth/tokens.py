"""JWTs: verification for the API, issuing for development (`genesis token`)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import jwt

from genesis import db, errors
from genesis.auth.jwks import JwksKeys
from genesis.settings import Settings, SettingsError

AGENT_SCOPE = "genesis:agent"
# The audience of the API's own stream tokens (genesis/auth/stream_tokens.py): never an access token.
STREAM_AUDIENCE = "genesis:event-stream"
# Verified tokens kept, so a client's every request does not re-verify the same signature (~70 µs of the API's CPU
# per request with HS256). Only with a fixed key (JWT_SECRET / JWT_PUBLIC_KEY): JWKS keys rotate.
VERIFIED_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for: its `sub`, the roles its `scope` claim grants, and when it ends."""

    user_id: str
    scopes: frozenset[str]
    expires_at: float


def _fits(key: str, algorithm: str) -> bool:
    """Whether PyJWT can verify `algorithm` with `key`: checked at start-up, not on the first request."""
    try:
        jwt.get_algorithm_by_name(algorithm).prepare_key(key)
    except (jwt.InvalidKeyError, ValueError, TypeError):
        return False
    return True


def parse_scopes(claim: object) -> frozenset[str]:
    """An OAuth 2 `scope` claim (space-separated); anything else grants nothing."""
    return frozenset(claim.split()) if isinstance(claim, str) else frozenset()


class TokenVerifier:
    """Checks `Authorization: Bearer` tokens: signature, `exp` (required), `aud`/`iss` when configured.

    The key is JWT_SECRET, JWT_PUBLIC_KEY, or the JWKS key the token's `kid` names (JWT_JWKS_URL). Whatever the
    token says, `alg` must be one of the allow-list's, and anything wrong with a token is a 401, never a 5xx.
    """

    def __init__(self, settings: Settings) -> None:
        settings.require_jwt_key()
        self._key = settings.jwt_public_key or settings.jwt_secret
        self._jwks = None
        if settings.jwt_jwks_url:
            self._jwks = JwksKeys(
                settings.jwt_jwks_url,
                timeout=settings.jwt_jwks_timeout,
                refetch_interval=settings.jwt_jwks_refetch_interval,
            )
        # A public key never verifies HMAC tokens (the classic key-confusion attack), and `none` is never allowed.
        asymmetric = bool(settings.jwt_public_key or settings.jwt_jwks_url)
        self._algorithms = [a for a in settings.jwt_algorithms if a.startswith("HS") != asymmetric]
        if not self._algorithms:
            self._algorithms = ["RS256", "ES256"] if asymmetric else ["HS256"]
        if settings.jwt_public_key and not any(_fits(settings.jwt_public_key, a) for a in self._algorithms):
            raise SettingsError(f"JWT_PUBLIC_KEY: not a PEM public key for any of {self._algorithms}")
        self._audience = settings.jwt_audience or None
        self._issuer = settings.jwt_issuer or None
        # A token's digest → what it proved, oldest first: a digest, so the cache's size does not grow with the
        # tokens' (header fields up to 16 KiB each).
        self._verified: dict[bytes, Principal] = {}

    @property
    def jwks(self) -> JwksKeys | None:
        return self._jwks

    async def close(self) -> None:
        if self._jwks is not None:
            await self._jwks.close()

    async def authenticate(self, authorization: str | None) -> Principal:
        """What the API calls: with JWT_JWKS_URL the key may have to be fetched first (without blocking)."""
        token = _bearer(authorization)
        if self._jwks is None:
            digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()  # any header text
            known = self._verified.get(digest)
            if known is not None:
                if time.time() < known.expires_at:  # PyJWT's own rule: expired once exp <= now (no leeway)
                    return known
                del self._verified[digest]
            principal = self._decode(token, self._key)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                del self._verified[next(iter(self._verified))]
            self._verified[digest] = principal
            return principal
        header = _header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise errors.Unauthorized("Invalid token: The specified alg value is not allowed")
        if kid is not None and not isinstance(kid, str):
            raise errors.Unauthorized("Invalid token: kid must be a string")
        return self._decode(token, await self._jwks.key_for(kid, alg))

    def _decode(self, token: str, key: str | jwt.PyJWK) -> Principal:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise errors.Unauthorized("Token expired") from None
        except jwt.PyJWTError as exc:
            # Not only InvalidTokenError: a key that does not fit the token's alg is an InvalidKeyError.
            raise errors.Unauthorized(f"Invalid token: {exc}") from None
        except (ValueError, TypeError, OverflowError, KeyError):
            # What a hostile token can still provoke inside PyJWT or cryptography (e.g. an `exp` of 1e400).
            raise errors.Unauthorized("Invalid token: malformed") from None
        audience = claims.get("aud")
        if audience == STREAM_AUDIENCE or (isinstance(audience, list) and STREAM_AUDIENCE in audience):
            raise errors.Unauthorized("Invalid token: a stream token only opens an event stream")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise errors.Unauthorized("Token has no subject")
        if not db.storable_text(sub):
            raise errors.Unauthorized("Token subject has characters a user id cannot hold")
        return Principal(sub, parse_scopes(claims.get("scope")), _expiry(claims["exp"]))


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise errors.Unauthorized("Missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthorized("Authorization must be 'Bearer <token>'")
    return token.strip()


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise errors.Unauthorized(f"Invalid token: {exc}") from None
    except (ValueError, TypeError, OverflowError):
        raise errors.Unauthorized("Invalid token: malformed") from None


def _expiry(exp: Any) -> float:
    # PyJWT has checked `exp` is a number in the future; a float that large still has to be one.
    try:
        value = float(exp)
    except (TypeError, ValueError, OverflowError):
        raise errors.Unauthorized("Invalid token: exp must be a number") from None
    if value != value or value == float("inf"):
        raise errors.Unauthorized("Invalid token: exp must be a finite number")
    return value


def issue_token(settings: Settings, user: str, ttl: int = 3600, scopes: str = "") -> str:
    """A development token signed with JWT_SECRET; `scopes` is the space-separated `scope` claim."""
    if not settings.jwt_secret:
        raise errors.DomainError("JWT_SECRET is needed to issue tokens")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user, "iat": now, "exp": now + ttl}
    if scopes.strip():
        claims["scope"] = " ".join(scopes.split())
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    algorithm = next((a for a in settings.jwt_algorithms if a.startswith("HS")), "HS256")
    return jwt.encode(claims, settings.jwt_secret, algorithm=algorithm)
