"""Stream tokens (CONTRACT §5): what lets a browser's native EventSource, which cannot send an Authorization header,
open a session's event stream with `?stream_token=`.

A stream token is a JWT the API signs itself (HS256), so any replica with the same key accepts any replica's token
and nothing is stored. It is explicitly typed (RFC 8725 §3.11: header `typ` and its own audience), bound to one user
(`sub`) and one session (`sid`), and good for STREAM_TOKEN_TTL to open a stream (`exp`); the stream it opens ends
when the access token it was minted from expires (`access_exp`), as a bearer-opened stream does.

Its key: STREAM_TOKEN_SECRET when set; otherwise, with JWT_SECRET, a key derived from it (HMAC-SHA256 of a fixed
label), so development and HS256 deployments need no new setting, every replica derives the same key, and the two
kinds of token are distinct by their key as well as by their type and audience: neither verifies as the other even
if one check were lost. Verifying access tokens with a public key or a JWKS, the service holds no secret to derive
from, so STREAM_TOKEN_SECRET is required (checked at start-up).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

import jwt

from genesis import errors
from genesis.auth.tokens import STREAM_AUDIENCE as AUDIENCE
from genesis.auth.tokens import Principal
from genesis.settings import Settings

TOKEN_TYPE = "genesis-stream+jwt"  # the JWT header's `typ`
__all__ = ["AUDIENCE", "TOKEN_TYPE", "StreamTokens", "signing_key"]
ALGORITHM = "HS256"
_DERIVATION_LABEL = b"genesis stream-token signing key v1"


def signing_key(settings: Settings) -> bytes:
    settings.require_stream_token_key()
    if settings.stream_token_secret:
        return settings.stream_token_secret.encode()
    return hmac.new(settings.jwt_secret.encode(), _DERIVATION_LABEL, hashlib.sha256).digest()


class StreamTokens:
    def __init__(self, settings: Settings) -> None:
        self._key = signing_key(settings)
        self._ttl = settings.stream_token_ttl

    def mint(self, principal: Principal, session_id: uuid.UUID) -> tuple[str, float]:
        """A token for `principal` to open the stream of `session_id`; and when it stops opening one."""
        now = time.time()
        expires_at = min(now + self._ttl, principal.expires_at)  # never outlives the access token
        claims = {
            "sub": principal.user_id,
            "sid": str(session_id),
            "aud": AUDIENCE,
            "iat": int(now),
            "exp": expires_at,
            "access_exp": principal.expires_at,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"typ": TOKEN_TYPE}), expires_at

    def verify(self, token: str, session_id: str) -> Principal:
        """The principal a stream token speaks for, on the stream of `session_id` (the path's, as given); its
        `expires_at` is the access token's, so the stream ends when that one does."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != TOKEN_TYPE:
                raise errors.Unauthorized("Invalid stream token: not a stream token")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["exp", "sub", "sid", "access_exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise errors.Unauthorized("Stream token expired; ask for a new one") from None
        except jwt.PyJWTError as exc:
            raise errors.Unauthorized(f"Invalid stream token: {exc}") from None
        except (ValueError, TypeError, OverflowError, KeyError):
            raise errors.Unauthorized("Invalid stream token: malformed") from None
        if claims["sid"] != _canonical(session_id):
            raise errors.Unauthorized("Stream token is for another session")
        sub, access_exp = claims["sub"], claims["access_exp"]
        if not isinstance(sub, str) or not isinstance(access_exp, int | float) or isinstance(access_exp, bool):
            raise errors.Unauthorized("Invalid stream token: malformed")
        if access_exp <= time.time():
            raise errors.Unauthorized("The access token this stream token came from has expired")
        return Principal(sub, frozenset(), float(access_exp))


def _canonical(session_id: str) -> str:
    try:
        return str(uuid.UUID(session_id))
    except ValueError:
        return ""
