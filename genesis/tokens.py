"""JWTs: verification for the API, issuing for development (`genesis token`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

from genesis import db, errors
from genesis.settings import Settings

AGENT_SCOPE = "genesis:agent"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for: its `sub`, the roles its `scope` claim grants, and when it ends."""

    user_id: str
    scopes: frozenset[str]
    expires_at: float


def parse_scopes(claim: object) -> frozenset[str]:
    """An OAuth 2 `scope` claim (space-separated); anything else grants nothing."""
    return frozenset(claim.split()) if isinstance(claim, str) else frozenset()


class TokenVerifier:
    """Checks `Authorization: Bearer` tokens: signature, `exp` (required), `aud`/`iss` when configured."""

    def __init__(self, settings: Settings) -> None:
        settings.require_jwt_key()
        self._key = settings.jwt_public_key or settings.jwt_secret
        # A public key never verifies HMAC tokens (the classic key-confusion attack), and `none` is never allowed.
        asymmetric = bool(settings.jwt_public_key)
        self._algorithms = [a for a in settings.jwt_algorithms if a.startswith("HS") != asymmetric]
        if not self._algorithms:
            self._algorithms = ["RS256", "ES256"] if asymmetric else ["HS256"]
        self._audience = settings.jwt_audience or None
        self._issuer = settings.jwt_issuer or None

    def user_id(self, authorization: str | None) -> str:
        return self.verify(authorization).user_id

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise errors.Unauthorized("Missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthorized("Authorization must be 'Bearer <token>'")
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise errors.Unauthorized("Token expired") from None
        except jwt.InvalidTokenError as exc:
            raise errors.Unauthorized(f"Invalid token: {exc}") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise errors.Unauthorized("Token has no subject")
        if not db.storable_text(sub):
            raise errors.Unauthorized("Token subject has characters a user id cannot hold")
        return Principal(sub, parse_scopes(claims.get("scope")), float(claims["exp"]))


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
