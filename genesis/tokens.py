"""JWTs: verification for the API, issuing for development (`genesis token`)."""

from __future__ import annotations

import time
from typing import Any

import jwt

from genesis import db, errors
from genesis.settings import Settings


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
        return sub


def issue_token(settings: Settings, user: str, ttl: int = 3600) -> str:
    """A development token signed with JWT_SECRET."""
    if not settings.jwt_secret:
        raise errors.DomainError("JWT_SECRET is needed to issue tokens")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user, "iat": now, "exp": now + ttl}
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    algorithm = next((a for a in settings.jwt_algorithms if a.startswith("HS")), "HS256")
    return jwt.encode(claims, settings.jwt_secret, algorithm=algorithm)
